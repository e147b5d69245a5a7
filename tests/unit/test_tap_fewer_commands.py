"""A new instance's tap costs no `ip` run before its QEMU starts (it was three, six before
that): in the agent's own namespace the taps are listed and made (down) by ioctl (tapdev.py);
a stale one is still removed by `ip`, and another namespace or a bridge still uses `ip`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from atwill.agent import instances
from atwill.agent.config import AgentConfig
from atwill.agent.hypervisor import tap
from atwill.hostlib.run import HostCommandError


class Host:
    """The kernel's taps (tapdev's calls) and `ip` as the agent runs it, on a dict of
    interfaces: name -> [kind, MTU, up]."""

    def __init__(self, links: dict[str, list]) -> None:
        self.links, self.asked, self.calls = links, [], []
        self.no_ipv6: set[str] = set()
        self.masters: set[str] = set()  # the taps some bridge has

    # tapdev ------------------------------------------------------------------
    def links_here(self) -> dict[str, tuple[int, bool]]:
        self.calls.append(("links",))
        return {n: (mtu, up) for n, (kind, mtu, up) in self.links.items() if kind == "tun"}

    def add(self, name: str) -> bool:
        self.calls.append(("add", name))
        if name in self.links:
            return False
        self.links[name] = ["tun", 1500, False]
        return True

    def set_up(self, name: str, mtu: int | None = None) -> None:
        self.calls.append(("set_up", name, mtu))
        if mtu is not None:
            self.links[name][1] = mtu
        self.links[name][2] = True

    def set_mtu(self, name: str, mtu: int | None) -> None:
        self.calls.append(("set_mtu", name, mtu))
        if mtu is not None:
            self.links[name][1] = mtu

    def set_down(self, name: str) -> None:
        self.calls.append(("set_down", name))
        self.links[name][2] = False

    def disable_ipv6(self, name: str) -> None:
        self.calls.append(("disable_ipv6", name))
        self.no_ipv6.add(name)

    def plugged(self, name: str) -> bool:
        return name in self.masters

    # ip -----------------------------------------------------------------------
    def __call__(self, netns: str | None, *args: str, check: bool = True
                 ) -> subprocess.CompletedProcess[str]:
        self.asked.append(args)
        code = 0
        if args[:2] == ("link", "show"):
            code = 0 if args[3] in self.links else 1
        elif args[:2] == ("link", "del"):
            self.links.pop(args[3], None)
        elif args[0] == "tuntap":
            code = 1 if args[3] in self.links else 0
            self.links.setdefault(args[3], ["tun", 1500, False])
        if code and check:
            raise HostCommandError(["ip", *args], code, "exists")
        return subprocess.CompletedProcess(args, code, stdout="[]")


class Kernel:
    def __init__(self, host: Host) -> None:
        self.links, self.add, self.set_up = host.links_here, host.add, host.set_up
        self.set_mtu, self.set_down = host.set_mtu, host.set_down
        self.disable_ipv6, self.plugged = host.disable_ipv6, host.plugged


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Host:
    made = Host({"lo": ["loopback", 65536, True], "tapcccccccc5555": ["tun", 1500, True]})
    monkeypatch.setattr(tap, "_ip", made)
    monkeypatch.setattr(tap, "_kernel", Kernel(made))
    return made


def test_a_new_tap_takes_no_ip_run(tmp_path: Path, host: Host) -> None:
    manager = instances.InstanceManager(AgentConfig(
        state_dir=tmp_path, controller_url="https://c:1", node_id="n", name="node1"))
    manager.taps([{"id": "i1", "nics": [{"port_id": "aaaaaaaa-1111-2222", "mtu": 1450}]}])
    # Made down, without IPv6: the data plane switches it on once plugged (plane._ports).
    assert host.calls == [("links",), ("add", "tapaaaaaaaa1111"),
                          ("disable_ipv6", "tapaaaaaaaa1111"),
                          ("set_mtu", "tapaaaaaaaa1111", 1450)]
    assert host.links["tapaaaaaaaa1111"] == ["tun", 1450, False]
    assert host.no_ipv6 == {"tapaaaaaaaa1111"}
    # The one stale tap is removed as before (asked, then deleted), by `ip`.
    assert host.asked == [("link", "show", "dev", "tapcccccccc5555"),
                          ("link", "del", "dev", "tapcccccccc5555")]
    assert "tapcccccccc5555" not in host.links


def test_a_tap_as_wanted_is_left_alone(tmp_path: Path, host: Host) -> None:
    manager = instances.InstanceManager(AgentConfig(
        state_dir=tmp_path, controller_url="https://c:1", node_id="n", name="node1"))
    host.masters.add("tapcccccccc5555")  # up and on its bridge
    manager.taps([{"id": "i1", "nics": [{"port_id": "cccccccc-5555-2222", "mtu": 1500}]}])
    assert host.calls == [("links",)] and host.asked == []


def test_an_interface_under_the_name_is_kept_not_set_up(host: Host) -> None:
    host.links["tapbbbbbbbb3333"] = ["veth", 1500, False]
    tap.create("tapbbbbbbbb3333", mtu=1400)
    assert host.links["tapbbbbbbbb3333"] == ["veth", 1400, False]


def test_a_bridge_or_another_namespace_is_ip_s(host: Host) -> None:
    tap.create("tapbbbbbbbb3333", bridge="br0", mtu=1400)
    assert host.asked[-1] == ("link", "set", "dev", "tapbbbbbbbb3333", "mtu", "1400",
                              "master", "br0", "up")
    tap.create("tapdddddddd4444", netns="ns1", mtu=1400)
    assert host.asked[-1] == ("link", "set", "dev", "tapdddddddd4444", "mtu", "1400")
    tap.create("tapeeeeeeee4444", netns="ns1")  # down, as made: nothing to set
    assert host.asked[-1][0] == "tuntap"
    assert not any(call[0] == "add" for call in host.calls)


def test_an_add_that_fails_for_another_reason_raises(host: Host,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: str) -> bool:
        raise HostCommandError(["ioctl", "TUNSETIFF", name], 1, "Operation not permitted")

    monkeypatch.setattr(tap._kernel, "add", refuse)
    with pytest.raises(HostCommandError):
        tap.create("tapdddddddd7777", mtu=1400)
