"""Ansible's openstack.cloud collection (shipped in PyPI's `ansible`) against atwill.

A project member's playbook makes a network, subnet, router (gateway on `public`),
security group and rule, keypair, a volume, two servers (on a fake node that reports them
running and their volumes attached, beside a fake storage node that exports volumes), the
volume attached to the first server and a floating IP on it from `public` through the
router; all checked with the real openstack CLI. A second run reports changed=0 (the
collection decides; the API must let it see that nothing differs); a third run detaches
and deletes it all (the floating IP with its server).

The modules' Python starts warm (tests/api/warm_python.py): each task's interpreter is
forked from one that has imported openstacksdk, instead of importing it afresh (~0.5 s of
CPU for each of the 31 tasks); ansible-playbook, the AnsiballZ payloads and the modules'
code and requests are unchanged.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.api.test_server_image import FakeNode
from tests.api.volume_nodes import StorageNode
from tests.api.warm_python import WarmPython
from tests.cloud import BIN, Cloud, unique


def public_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " ansible@atwill"


def tasks(state: str) -> list[dict[str, Any]]:
    """The playbook's tasks in making order (reversed to delete)."""
    common = {"cloud": "{{ cloud }}", "state": state}

    def server(name: str) -> dict[str, Any]:
        return {"openstack.cloud.server": {
            **common, "name": f"{{{{ prefix }}}}-{name}", "image": "{{ image }}",
            "flavor": "{{ flavor }}", "network": "{{ prefix }}-net",
            "availability_zone": "{{ zone }}", "key_name": "{{ prefix }}-key",
            "security_groups": ["{{ prefix }}-sg"], "auto_ip": False, "timeout": 60,
            "delete_ips": True}}

    made = [
        {"openstack.cloud.network": {**common, "name": "{{ prefix }}-net"}},
        {"openstack.cloud.subnet": {**common, "name": "{{ prefix }}-subnet",
                                    "network_name": "{{ prefix }}-net",
                                    "cidr": "10.78.0.0/24",
                                    "dns_nameservers": ["10.0.0.53"]}},
        {"openstack.cloud.router": {**common, "name": "{{ prefix }}-router",
                                    "network": "public",
                                    "interfaces": ["{{ prefix }}-subnet"]}},
        {"openstack.cloud.security_group": {**common, "name": "{{ prefix }}-sg",
                                            "description": "ssh in"}},
        {"openstack.cloud.security_group_rule": {
            **common, "security_group": "{{ prefix }}-sg", "protocol": "tcp",
            "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}},
        {"openstack.cloud.keypair": {**common, "name": "{{ prefix }}-key",
                                     "public_key": "{{ public_key }}"}},
        {"openstack.cloud.volume": {**common, "name": "{{ prefix }}-data", "size": 1,
                                    "timeout": 60}},
        server("vm"), server("vm2"),
        {"openstack.cloud.server_volume": {**common, "server": "{{ prefix }}-vm",
                                           "volume": "{{ prefix }}-data", "timeout": 60}},
        {"openstack.cloud.floating_ip": {**common, "server": "{{ prefix }}-vm",
                                         "network": "public",
                                         "nat_destination": "{{ prefix }}-net",
                                         "purge": True, "timeout": 60}},
    ]
    # Deleting, the rule goes with its group, and the floating IP (which the module can
    # only find by its address) with its server (delete_ips).
    return made if state == "present" else [t for t in reversed(made)
                                            if "security_group_rule" not in str(t)
                                            and "floating_ip" not in str(t)]


def playbook(state: str) -> list[dict[str, Any]]:
    return [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "tasks": tasks(state)}]


def keep_running(node: FakeNode, storage: StorageNode, stop: threading.Event) -> None:
    """Act as both nodes' agents: every volume made and exported, every server placed on
    the compute node running with the volumes its desired state gives it attached."""
    while not stop.wait(0.2):
        storage.converge()
        with node.http() as client:
            state = client.get(f"/cluster/v1/nodes/{node.id}/desired",
                               params={"wait": 0}).json()
        node.beat({i["id"]: {"state": "running", "rebuild_serial": i.get("rebuild_serial", 0),
                             "volumes": {v["volume_id"]: "attached"
                                         for v in i.get("volumes") or []}}
                   for i in state["instances"]})


@pytest.fixture(scope="module")
def setup(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("ansible")
    zone, flavor, image = unique("ansaz"), unique("ansflv"), unique("ansimg")
    node, storage = FakeNode(cloud, tmp, zone), StorageNode(cloud, tmp, "ansstor")
    storage.keep_beating()
    stop = threading.Event()
    runner = threading.Thread(target=keep_running, args=(node, storage, stop), daemon=True)
    runner.start()
    data = tmp / "base.img"
    data.write_bytes(os.urandom(64 * 1024))
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    image_id = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                               "--container-format", "bare", "--public", image,
                               "-f", "json")["id"]
    project, user = unique("ansproj"), unique("ansuser")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    warm: WarmPython | None = None
    try:
        warm = WarmPython(tmp / "warm", module_env(tmp))
        yield {"tmp": tmp, "zone": zone, "flavor": flavor, "image": image, "user": user,
               "prefix": unique("ans"), "public_key": public_key(), "python": str(warm.python)}
    finally:
        if warm is not None:
            warm.close()
        stop.set()
        runner.join(timeout=10)
        node.remove()
        storage.remove()
        cloud.openstack("image", "delete", image_id)
        cloud.openstack("flavor", "delete", flavor)
        cloud.openstack("user", "delete", user)
        cloud.openstack("project", "delete", project)


SITECUSTOMIZE = """\
import openstack.version  # noqa: F401
from atwill.devcloud_quickpoll import install

install(osc=False)
"""


def module_env(tmp: Path) -> dict[str, str]:
    """The environment of ansible-playbook and of its modules' interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ANSIBLE_"))}
    # openstack.cloud 2.5 (ansible 12, the last for Python 3.11) reads openstack.version
    # without importing it, which openstacksdk 4.x no longer does on `import openstack`:
    # its modules fail with "module 'openstack' has no attribute 'version'" unless the
    # interpreter loads it first.
    preload = tmp / "preload"
    preload.mkdir(exist_ok=True)
    # It also has the modules poll every 0.2 s where openstacksdk sleeps 2-5 s between
    # looks at a server, volume or attachment coming or going (atwill.devcloud_quickpoll;
    # the fake nodes answer within 0.2 s): the same requests and states, and a third of
    # the playbooks' time (60.7 s -> 44.6 s for the test's call, measured).
    (preload / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env["PYTHONPATH"] = str(preload)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return env


def play(cloud: Cloud, setup: dict[str, Any], state: str) -> dict[str, int]:
    """Run the playbook; the PLAY RECAP counts for localhost."""
    tmp: Path = setup["tmp"]
    book = tmp / f"{state}.yaml"
    book.write_text(yaml.safe_dump(playbook(state), sort_keys=False))
    extra = {k: setup[k] for k in ("zone", "flavor", "image", "prefix", "public_key")}
    python = setup["python"]
    extra.update(cloud=setup["user"], ansible_python_interpreter=python)
    env = module_env(tmp)
    env.update(OS_CLIENT_CONFIG_FILE=str(cloud.clouds_yaml()), ANSIBLE_HOME=str(tmp / "home"),
               ANSIBLE_LOCAL_TEMP=str(tmp / "local"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=python)
    variables = tmp / "vars.yaml"
    variables.write_text(yaml.safe_dump(extra))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(book),
                           "-e", f"@{variables}"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+"
                      r"failed=(\d+)", proc.stdout)
    assert recap, proc.stdout
    return dict(zip(("ok", "changed", "unreachable", "failed"),
                    map(int, recap.groups()), strict=True))


def test_playbook_makes_then_changes_nothing_then_deletes(cloud: Cloud,
                                                          setup: dict[str, Any]) -> None:
    prefix, user = setup["prefix"], setup["user"]

    def show(*args: str, check: bool = True) -> Any:
        return cloud.openstack(*args, "-f", "json", user=user, check=check)

    first = play(cloud, setup, "present")
    assert first["changed"] == 11 and first["failed"] == 0, first
    subnet = show("subnet", "show", f"{prefix}-subnet")
    assert subnet["cidr"] == "10.78.0.0/24" and subnet["dns_nameservers"] == ["10.0.0.53"]
    router = show("router", "show", f"{prefix}-router")
    assert subnet["id"] in str(router["interfaces_info"])
    public = show("network", "show", "public")["id"]
    assert router["external_gateway_info"]["network_id"] == public
    rules = show("security", "group", "rule", "list", f"{prefix}-sg", "--ingress")
    assert [(r["IP Protocol"], r["Port Range"]) for r in rules] == [("tcp", "22:22")]
    assert show("keypair", "show", f"{prefix}-key")["type"] == "ssh"
    servers = {n: show("server", "show", f"{prefix}-{n}") for n in ("vm", "vm2")}
    for server in servers.values():
        assert server["status"] == "ACTIVE", server
        assert server["key_name"] == f"{prefix}-key"
        assert "10.78.0." in str(server["addresses"])
    volume = show("volume", "show", f"{prefix}-data")
    assert volume["status"] == "in-use", volume
    assert [a["server_id"] for a in volume["attachments"]] == [servers["vm"]["id"]]
    (fip,) = show("floating", "ip", "list", "--port", _port(show, servers["vm"]["id"]))
    assert fip["Floating Network"] == public and fip["Fixed IP Address"].startswith("10.78.0.")
    assert fip["Floating IP Address"] in str(show("server", "show", f"{prefix}-vm")[
        "addresses"])

    again = play(cloud, setup, "present")
    assert again == {"ok": 11, "changed": 0, "unreachable": 0, "failed": 0}, again

    gone = play(cloud, setup, "absent")
    assert gone["changed"] == 9 and gone["failed"] == 0, gone
    for kind, name in (("server", "vm"), ("server", "vm2"), ("volume", "data"),
                       ("keypair", "key"), ("router", "router"), ("security group", "sg"),
                       ("subnet", "subnet"), ("network", "net")):
        found = cloud.openstack(*kind.split(), "show", f"{prefix}-{name}", user=user,
                                check=False)
        assert found.returncode != 0, kind
    assert show("floating", "ip", "list") == []


def _port(show: Any, server_id: str) -> str:
    (port,) = show("port", "list", "--device-id", server_id)
    return port["ID"]
