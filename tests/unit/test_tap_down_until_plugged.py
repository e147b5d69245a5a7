"""A guest's tap is never up outside its bridge (review of eb0c369): up but unplugged it is
an interface of the host's own stack, which the `inet atwill` table lets through (it
filters what comes from the bridges), so the guest reached the host's services (IPv6
link-local to anything on `::`) and, with forged-source VXLAN to port 4789, other
tenants' networks. Taps are made down and without IPv6; the data plane switches one on
only once it is on its bridge behind its rules, and off again when its rules are refused
or it is taken off; TUNSETIFF never attaches to a tap that exists (IFF_TUN_EXCL).

Before the fix these failed: a new tap is down and without IPv6 (it was made up, IPv6
on), an up tap on no bridge is switched off (left up), refused rules or a tap no port
wants switch it off (left up, taken off its bridge: into the host's stack), adding never
attaches (no IFF_TUN_EXCL), and the real-kernel run in a namespace of its own. The
data plane's order (on its bridge, then up; a whole table refused: never up) held
already and is kept by the other two."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from atwill.agent.hypervisor import tap, tapdev
from atwill.agent.net import layout, plane
from atwill.agent.net.model import FixedIp, HostPlan, Network, Port, Subnet

TAP = "tapaaaaaaaa1111"


class Kernel:
    """tapdev's calls on a dict: name -> {"mtu", "up", "master", "ipv6"}."""

    def __init__(self, links: dict[str, dict[str, Any]]) -> None:
        self.state, self.calls = links, []

    def links(self) -> dict[str, tuple[int, bool]]:
        return {n: (v["mtu"], v["up"]) for n, v in self.state.items()}

    def add(self, name: str) -> bool:
        self.calls.append(("add", name))
        if name in self.state:
            return False
        self.state[name] = {"mtu": 1500, "up": False, "master": None, "ipv6": True}
        return True

    def disable_ipv6(self, name: str) -> None:
        self.calls.append(("disable_ipv6", name))
        self.state[name]["ipv6"] = False

    def set_mtu(self, name: str, mtu: int | None) -> None:
        if mtu is not None:
            self.state[name]["mtu"] = mtu

    def set_up(self, name: str, mtu: int | None = None) -> None:
        self.calls.append(("set_up", name))
        self.state[name]["up"] = True

    def set_down(self, name: str) -> None:
        self.calls.append(("set_down", name))
        self.state[name]["up"] = False

    def plugged(self, name: str) -> bool:
        return self.state[name]["master"] is not None


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Kernel:
    made = Kernel({})
    monkeypatch.setattr(tap, "_kernel", made)
    return made


def test_a_new_tap_is_down_and_without_ipv6(kernel: Kernel) -> None:
    tap.ensure({TAP: 1450})
    assert kernel.state[TAP] == {"mtu": 1450, "up": False, "master": None, "ipv6": False}
    assert ("set_up", TAP) not in kernel.calls
    # Down is as it should be until the data plane plugs it: not made again.
    kernel.calls.clear()
    tap.ensure({TAP: 1450})
    assert kernel.calls == []


def test_a_tap_up_on_no_bridge_is_switched_off(kernel: Kernel) -> None:
    kernel.state[TAP] = {"mtu": 1450, "up": True, "master": None, "ipv6": True}  # an older agent's
    kernel.state["tapbbbbbbbb2222"] = {"mtu": 1450, "up": True, "master": "br1", "ipv6": False}
    tap.ensure({TAP: 1450, "tapbbbbbbbb2222": 1450})
    assert kernel.calls == [("set_down", TAP)]
    assert kernel.state["tapbbbbbbbb2222"]["up"]  # plugged: the data plane's, left alone


class Links:
    """plane's `link` module on a dict: name -> {"up", "master"}; every change recorded."""

    def __init__(self, state: dict[str, dict[str, Any]]) -> None:
        self.state, self.events = state, []

    def exists(self, name: str) -> bool:
        return name in self.state

    def master(self, name: str) -> str | None:
        return self.state.get(name, {}).get("master")

    def is_up(self, name: str) -> bool:
        return bool(self.state.get(name, {}).get("up"))

    def slaves(self, bridge: str) -> list[str]:
        return sorted(n for n, v in self.state.items() if v.get("master") == bridge)

    def set_master(self, name: str, master: str) -> None:
        self.events.append(("master", name))
        self.state[name]["master"] = master

    def set_nomaster(self, name: str) -> None:
        self.events.append(("nomaster", name))
        self.state[name]["master"] = None

    def set_mtu(self, name: str, mtu: int) -> None:
        self.state[name]["mtu"] = mtu

    def set_up(self, name: str) -> None:
        self.events.append(("up", name))
        # Never up off its bridge.
        assert name not in self.state or not name.startswith("tap") or \
            self.state[name]["master"], f"{name} up on no bridge"
        self.state[name]["up"] = True

    def set_down(self, name: str) -> None:
        self.events.append(("down", name))
        if name in self.state:
            self.state[name]["up"] = False


def _plan() -> HostPlan:
    net = Network("n1", 100, 1400, (Subnet("s1", "10.0.0.0/24", 4, "10.0.0.1"),))
    port = Port("p1", "n1", "fa:16:3e:00:00:01", (FixedIp("s1", "10.0.0.5"),), TAP, ())
    return HostPlan("node-1", [net], [port], [], [], None, {})


@pytest.fixture
def links(monkeypatch: pytest.MonkeyPatch) -> Links:
    made = Links({TAP: {"up": False, "master": None}})
    monkeypatch.setattr(plane, "link", made)
    return made


def _bridge() -> str:
    return layout.build(_plan()).networks["n1"].bridge


def test_a_tap_is_switched_on_only_once_on_its_bridge(tmp_path: Path, links: Links) -> None:
    built = layout.build(_plan())
    plane.DataPlane(tmp_path, "node-1")._ports(built, set())
    assert links.events == [("master", TAP), ("up", TAP)]
    assert links.state[TAP]["up"] and links.state[TAP]["master"] == _bridge()


def test_refused_rules_switch_the_tap_off(tmp_path: Path, links: Links) -> None:
    links.state[TAP] = {"up": True, "master": _bridge()}  # plugged by an earlier pass
    plane.DataPlane(tmp_path, "node-1")._ports(layout.build(_plan()), {"p1"})
    assert links.events == [("down", TAP), ("nomaster", TAP)]
    assert links.state[TAP] == {"up": False, "master": None}


def test_a_tap_no_port_wants_is_switched_off_as_it_is_unplugged(tmp_path: Path,
                                                                 links: Links) -> None:
    links.state["tapcccccccc3333"] = {"up": True, "master": _bridge()}
    plane.DataPlane(tmp_path, "node-1")._ports(layout.build(_plan()), set())
    assert ("down", "tapcccccccc3333") in links.events
    assert links.events.index(("down", "tapcccccccc3333")) < \
        links.events.index(("nomaster", "tapcccccccc3333"))


def test_a_whole_table_refused_leaves_the_tap_down(tmp_path: Path, links: Links,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(ruleset: Any) -> None:
        raise RuntimeError("nft refused the table")

    monkeypatch.setattr(plane.nft, "apply", refuse)
    data = plane.DataPlane(tmp_path, "node-1")
    for piece in ("_sysctls", "_network_alone", "_remove_stale_links", "_routing",
                  "_floating", "_dhcp", "_metadata"):
        monkeypatch.setattr(data, piece, lambda *args: None)
    with pytest.raises(plane.PlaneError):
        data.apply(_plan())
    assert links.events == [] and links.state[TAP] == {"up": False, "master": None}


def test_adding_never_attaches_to_an_existing_tap(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[int, bytes]] = []

    def ioctl(fd: int, request: int, arg: Any = 0) -> Any:
        asked.append((request, arg if isinstance(arg, bytes) else b""))
        return arg

    monkeypatch.setattr(tapdev, "TUN", os.devnull)
    monkeypatch.setattr(tapdev.fcntl, "ioctl", ioctl)
    assert tapdev.add(TAP)
    request, ifreq = asked[0]
    flags = int.from_bytes(ifreq[16:18], sys.byteorder)
    assert request == tapdev.TUNSETIFF
    assert flags == tapdev.IFF_TAP | tapdev.IFF_NO_PI | tapdev.IFF_TUN_EXCL == 0x9002


def test_disable_ipv6_takes_interface_names_only() -> None:
    for bad in ("../../ipv4/ip_forward", "all", "default", ".."):
        with pytest.raises(ValueError):
            tapdev.disable_ipv6(bad)


_IN_NAMESPACE = f"""
import json, os
from atwill.agent.hypervisor import tap, tapdev
tap.create({TAP!r}, mtu=1400)
links = tapdev.links()
again = tapdev.add({TAP!r})
with open("/proc/sys/net/ipv6/conf/{TAP}/disable_ipv6") as f:
    ipv6_off = f.read().strip()
tapdev.set_up({TAP!r})
up = tapdev.links()[{TAP!r}]
tapdev.set_down({TAP!r})
print(json.dumps({{"links": links, "again": again, "ipv6_off": ipv6_off, "up": up,
                  "down": tapdev.links()[{TAP!r}]}}))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun")
                    or shutil.which("unshare") is None,
                    reason="makes a tap in a namespace of its own: root and /dev/net/tun")
def test_in_a_namespace_a_new_tap_is_down_without_ipv6() -> None:
    # A namespace of its own, gone with the process: nothing to remove.
    done = subprocess.run(["unshare", "--net", sys.executable, "-c", _IN_NAMESPACE],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["links"] == {TAP: [1400, False]}  # made down
    assert seen["again"] is False  # IFF_TUN_EXCL: the existing tap is not attached to
    assert seen["ipv6_off"] == "1"
    assert seen["up"] == [1400, True] and seen["down"] == [1400, False]
