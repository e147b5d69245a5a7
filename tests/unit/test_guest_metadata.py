"""The guest's metadata parsing (jsonflat.awk, identity.sh) and DHCP script, run by busybox."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

BUSYBOX = shutil.which("busybox")
pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="needs busybox")
FILES = resources.files("atwill.guest").joinpath("files")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyForTests user@host"


def flatten(value: Any, path: str = "") -> list[tuple[str, str]]:
    """What jsonflat.awk should print, computed in Python."""
    if isinstance(value, dict):
        pairs = value.items()
    elif isinstance(value, list):
        pairs = ((str(i), item) for i, item in enumerate(value))
    else:
        text = {True: "true", False: "false", None: "null"}.get(value, value) \
            if not isinstance(value, int | float) or isinstance(value, bool) else str(value)
        return [(path, str(text))]
    out: list[tuple[str, str]] = []
    for key, item in pairs:
        out += flatten(item, f"{path}.{key}" if path else key)
    return out


def sh(script: str, tmp_path: Path, stdin: str = "") -> str:
    env = {"PATH": os.environ["PATH"], "JSONFLAT": str(FILES / "jsonflat.awk")}
    done = subprocess.run([BUSYBOX or "busybox", "sh", "-c",
                           f". {FILES / 'identity.sh'}\n{script}"],
                          input=stdin, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=10, check=True)
    return done.stdout


def awk_flat(document: str, tmp_path: Path) -> list[tuple[str, str]]:
    (tmp_path / "meta.json").write_text(document)
    out = sh("meta_flatten meta.json", tmp_path)
    return [tuple(line.split("\t", 1)) for line in out.splitlines()]  # type: ignore[misc]


NOVA = {
    "uuid": "d8e02d56-2648-49a3-bf97-6be8f1204f38", "hostname": "demo", "name": "demo",
    "launch_index": 0, "availability_zone": "nova", "project_id": "f7ac731cc11f40efbc03a9f9",
    "meta": {"role": "web", "empty": ""}, "devices": [],
    "public_keys": {"mykey": KEY + "\n"},
    "keys": [{"name": "mykey", "type": "ssh", "data": KEY + "\n"}],
    "random_seed": "yu5ZnkqF2CqnDZVAfZgarG/A==",
}


@pytest.mark.parametrize("indent", [None, 2])
def test_nova_meta_data_flattens_like_python(tmp_path: Path, indent: int | None) -> None:
    expected = [(path, value.replace("\n", " ")) for path, value in flatten(NOVA)]
    assert awk_flat(json.dumps(NOVA, indent=indent), tmp_path) == expected


def test_escapes_numbers_and_nesting(tmp_path: Path) -> None:
    doc = r'{"a": "q\"uote\\ \/ \u0041\u00e9", "n": -1.5e3, "t": true, "z": null,' \
          r' "x": [[1, {"y": "z"}], []], "e": {}}'
    assert awk_flat(doc, tmp_path) == [
        ("a", 'q"uote\\ / A?'), ("n", "-1.5e3"), ("t", "true"), ("z", "null"),
        ("x.0.0", "1"), ("x.0.1.y", "z")]


def test_malformed_input_ends_without_hanging(tmp_path: Path) -> None:
    assert awk_flat('{"uuid": "abc", "broken', tmp_path)[:1] == [("uuid", "abc")]
    assert awk_flat("not json", tmp_path) == []
    assert awk_flat("", tmp_path) == []


def test_fields_keys_and_names(tmp_path: Path) -> None:
    doc = dict(NOVA, public_keys={"mykey": KEY + "\n", "other.key": "ssh-rsa AAAAB3 x"},
               hostname="web-1.novalocal")
    (tmp_path / "meta.json").write_text(json.dumps(doc))
    out = sh("meta_flatten meta.json > flat\n"
             "echo \"uuid=$(meta_field flat uuid)\"\n"
             "echo \"role=$(meta_field flat meta.role)\"\n"
             "echo \"missing=$(meta_field flat nothing)\"\n"
             "meta_keys flat\n", tmp_path)
    assert out.splitlines() == [
        f"uuid={NOVA['uuid']}", "role=web", "missing=", KEY, "ssh-rsa AAAAB3 x"]


def test_keys_only_in_the_keys_list(tmp_path: Path) -> None:
    doc = {"uuid": "u", "keys": [{"name": "a", "type": "ssh", "data": KEY}]}
    (tmp_path / "meta.json").write_text(json.dumps(doc))
    assert sh("meta_flatten meta.json > flat; meta_keys flat", tmp_path) == KEY + "\n"


def test_names_are_made_safe(tmp_path: Path) -> None:
    out = sh("safe_hostname 'we b;$(x)_1.example'\n"
             "safe_uuid 'D8E02D56-2648-49a3-bf97-6be8f1204f38; rm'\n"
             "safe_hostname " + "a" * 80, tmp_path)
    assert out.splitlines() == ["webx1.example", "D8E02D56-2648-49a3-bf97-6be8f1204f38",
                                "a" * 63]


@pytest.fixture
def fake_tools(tmp_path: Path) -> Path:
    """A PATH where ip only records its arguments; everything else is busybox."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for applet in ("sh", "sed", "grep", "ipcalc", "cat"):
        (bin_dir / applet).symlink_to(BUSYBOX or "busybox")
    (bin_dir / "ip").write_text(f'#!{BUSYBOX} sh\necho "ip $*" >> {tmp_path}/ip.log\n'
                                '[ "$2 $3" != "route del" ]\n')
    (bin_dir / "ip").chmod(0o755)
    return bin_dir


def run_dhcp_script(tmp_path: Path, bin_dir: Path, **lease: str) -> list[str]:
    script = (FILES / "udhcpc.script").read_text()
    script = script.replace("/etc/resolv.conf", str(tmp_path / "resolv.conf"))
    script = script.replace("/run/atwill/", f"{tmp_path}/")
    (tmp_path / "script").write_text(script)
    env = {"PATH": str(bin_dir), "interface": "eth0", **lease}
    subprocess.run([BUSYBOX or "busybox", "sh", str(tmp_path / "script"), "bound"],
                   env=env, check=True, timeout=10, capture_output=True)
    return (tmp_path / "ip.log").read_text().splitlines()


def test_dhcp_lease_sets_mtu_address_router_and_dns(tmp_path: Path, fake_tools: Path) -> None:
    calls = run_dhcp_script(tmp_path, fake_tools, ip="10.0.0.5", subnet="255.255.255.0",
                            router="10.0.0.1 10.0.0.2", mtu="1400", dns="10.0.0.53 9.9.9.9",
                            domain="example")
    assert "ip link set dev eth0 mtu 1400" in calls
    assert "ip addr add 10.0.0.5/24 dev eth0" in calls
    assert "ip route replace default via 10.0.0.1 dev eth0" in calls
    assert (tmp_path / "resolv.conf").read_text() == \
        "search example\nnameserver 10.0.0.53\nnameserver 9.9.9.9\n"
    assert (tmp_path / "ip.eth0").read_text() == "10.0.0.5\n"


def test_classless_routes_win_over_the_router(tmp_path: Path, fake_tools: Path) -> None:
    calls = run_dhcp_script(tmp_path, fake_tools, ip="10.0.0.5", subnet="255.255.0.0",
                            router="10.0.0.9",
                            staticroutes="169.254.169.254/32 10.0.0.2 0.0.0.0/0 10.0.0.1")
    assert "ip addr add 10.0.0.5/16 dev eth0" in calls
    assert "ip route replace 169.254.169.254/32 via 10.0.0.2 dev eth0" in calls
    assert "ip route replace default via 10.0.0.1 dev eth0" in calls
    assert not any("10.0.0.9" in call for call in calls)
