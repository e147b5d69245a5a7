"""WireGuard between two namespaces through the real WireGuard class (wireguard-go here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from atwill.hostlib.overlay import udp_buffers
from atwill.hostlib.overlay.base import OverlaySpec, Peer, interface_name
from atwill.hostlib.overlay.wireguard import SOCKET_DIR, generate_keypair
from atwill.hostlib.run import ChildProcess, run
from tests.host.conftest import Host

pytestmark = pytest.mark.host
MODULE, CLS = "atwill.hostlib.overlay.wireguard", "WireGuard"
PORT = 51820


def _spec(ifname: str, index: int, key: Path, peers: list[Peer]) -> OverlaySpec:
    return OverlaySpec(kind="wireguard", ifname=ifname, address=f"10.250.0.{index}", prefix=24,
                       listen_port=PORT, mtu=1340, peers=peers, private_key_path=key)


def _node(tmp_path: Path, tag: str, wg_names: list[str]) -> tuple[Path, str, Path, str]:
    directory = tmp_path / tag
    directory.mkdir()
    private, public = generate_keypair()
    key = directory / "private.key"
    key.write_text(private + "\n")
    key.chmod(0o600)
    ifname = interface_name("awt-", f"{tmp_path}-{tag}")
    wg_names.append(ifname)
    return directory, ifname, key, public


def test_mesh_converges_changes_peers_and_tears_down(
        hosts: Callable[[int], list[Host]], tmp_path: Path, wg_names: list[str]) -> None:
    a, b = hosts(2)
    dir_a, if_a, key_a, pub_a = _node(tmp_path, "a", wg_names)
    dir_b, if_b, key_b, pub_b = _node(tmp_path, "b", wg_names)
    # a knows b's endpoint; b has none for a and learns it from a's handshake (NAT case).
    to_b = Peer("b", pub_b, "10.250.0.2", f"{b.address}:{PORT}", keepalive=5)
    to_a = Peer("a", pub_a, "10.250.0.1", None)
    spec_a = _spec(if_a, 1, key_a, [to_b])
    spec_b = _spec(if_b, 2, key_b, [to_a])

    status_a = a.call(MODULE, CLS, dir_a, if_a, "apply", spec_a)
    b.call(MODULE, CLS, dir_b, if_b, "apply", spec_b)
    assert status_a["implementation"] in ("wireguard-go", "kernel")
    if status_a["implementation"] == "wireguard-go":  # udp_buffers took it for ours
        sizes = udp_buffers.buffer_sizes(status_a["pid"])
        assert sizes and all(rcv == 2 * udp_buffers.SIZE for rcv, _snd in sizes), sizes
    assert a.ping("10.250.0.2", within=5)

    status_b = b.call(MODULE, CLS, dir_b, if_b, "status")
    [peer] = status_b["peers"]
    assert peer["public_key"] == pub_a and peer["endpoint"] == f"{a.address}:{PORT}"
    assert peer["latest_handshake"] > 0 and peer["allowed_ips"] == ["10.250.0.1/32"]
    addresses = b.run("ip", "-o", "addr", "show", "dev", if_b).stdout
    assert "10.250.0.2/24" in addresses and "mtu 1340" in b.run("ip", "link", "show", if_b).stdout

    # Applying the same spec again changes nothing: same process, same session.
    again = a.call(MODULE, CLS, dir_a, if_a, "apply", spec_a)
    assert again["pid"] == status_a["pid"]
    assert again["peers"][0]["latest_handshake"] == peer_handshake(a, dir_a, if_a)

    # Dropping b from a's peers cuts the path.
    a.call(MODULE, CLS, dir_a, if_a, "apply", _spec(if_a, 1, key_a, []))
    assert a.call(MODULE, CLS, dir_a, if_a, "status")["peers"] == []
    assert not a.ping("10.250.0.2")

    for host, directory, ifname in ((a, dir_a, if_a), (b, dir_b, if_b)):
        pid = host.call(MODULE, CLS, directory, ifname, "status")["pid"]
        host.call(MODULE, CLS, directory, ifname, "teardown")
        host.call(MODULE, CLS, directory, ifname, "teardown")  # idempotent
        _assert_gone(host, directory, ifname, pid)


def test_failed_apply_leaves_nothing(
        hosts: Callable[[int], list[Host]], tmp_path: Path, wg_names: list[str]) -> None:
    [a] = hosts(1)
    directory, ifname, key, _ = _node(tmp_path, "a", wg_names)
    key.unlink()  # The key is read after the interface exists, so the undo stack must act.
    with pytest.raises(Exception, match="private.key"):
        a.call(MODULE, CLS, directory, ifname, "apply", _spec(ifname, 1, key, []))
    _assert_gone(a, directory, ifname, None)


def peer_handshake(host: Host, directory: Path, ifname: str) -> int:
    handshake: int = host.call(MODULE, CLS, directory, ifname, "status")["peers"][0][
        "latest_handshake"]
    return handshake


def _assert_gone(host: Host, directory: Path, ifname: str, pid: int | None) -> None:
    assert not host.has_link(ifname)
    assert not (directory / f"{ifname}.pid").exists()
    assert not (directory / f"{ifname}.log").exists()
    assert not (SOCKET_DIR / f"{ifname}.sock").exists()
    assert ChildProcess(directory / f"{ifname}.pid", ifname).pid() is None
    if pid is not None:
        assert not _running(pid)
    assert run(["ip", "netns", "pids", host.name]).stdout.split() == []


def _running(pid: int) -> bool:
    # A stopped child may linger briefly as a zombie until its adoptive parent reaps it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False
