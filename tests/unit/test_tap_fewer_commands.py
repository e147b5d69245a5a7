"""A new instance's tap costs three `ip` runs before its QEMU starts (it was six): the
links read once for making and pruning, the add tried first, MTU and up in one set."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from atwill.agent import instances
from atwill.agent.config import AgentConfig
from atwill.agent.hypervisor import tap
from atwill.hostlib.run import HostCommandError


class Host:
    """`ip` as the agent runs it, on a dict of interfaces (name -> kind)."""

    def __init__(self, links: dict[str, str]) -> None:
        self.links, self.asked = links, []

    def __call__(self, netns: str | None, *args: str, check: bool = True
                 ) -> subprocess.CompletedProcess[str]:
        self.asked.append(args)
        code, out = 0, ""
        if args[:3] == ("-j", "link", "show"):
            out = ",".join(f'{{"ifname": "{n}", "mtu": 1500, "flags": ["UP"]}}'
                           for n, kind in self.links.items() if kind == "tun")
            out = f"[{out}]"
        elif args[0] == "tuntap":
            code = 1 if args[3] in self.links else 0
            self.links.setdefault(args[3], "tun")
        elif args[:2] == ("link", "show"):
            code = 0 if args[3] in self.links else 1
        if code and check:
            raise HostCommandError(["ip", *args], code, "exists")
        return subprocess.CompletedProcess(args, code, stdout=out)


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Host:
    made = Host({"lo": "loopback", "tapcccccccc5555": "tun"})
    monkeypatch.setattr(tap, "_ip", made)
    return made


def test_a_new_tap_takes_three_ip_runs(tmp_path: Path, host: Host) -> None:
    manager = instances.InstanceManager(AgentConfig(
        state_dir=tmp_path, controller_url="https://c:1", node_id="n", name="node1"))
    manager.taps([{"id": "i1", "nics": [{"port_id": "aaaaaaaa-1111-2222", "mtu": 1450}]}])
    assert host.asked[:3] == [
        ("-j", "link", "show", "type", "tun"),
        ("tuntap", "add", "dev", "tapaaaaaaaa1111", "mode", "tap"),
        ("link", "set", "dev", "tapaaaaaaaa1111", "mtu", "1450", "up")]
    # The one stale tap is removed as before (asked, then deleted).
    assert host.asked[3:] == [("link", "show", "dev", "tapcccccccc5555"),
                              ("link", "del", "dev", "tapcccccccc5555")]


def test_an_interface_under_the_name_is_kept_and_set_up(host: Host) -> None:
    host.links["tapbbbbbbbb3333"] = "veth"
    tap.create("tapbbbbbbbb3333", bridge="br0", mtu=1400)
    assert host.links["tapbbbbbbbb3333"] == "veth"
    assert host.asked[-1] == ("link", "set", "dev", "tapbbbbbbbb3333", "mtu", "1400",
                              "master", "br0", "up")


def test_an_add_that_fails_for_another_reason_raises(host: Host,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(netns: str | None, *args: str, check: bool = True
               ) -> subprocess.CompletedProcess[str]:
        if check:
            raise HostCommandError(["ip", *args], 2, "Operation not permitted")
        return subprocess.CompletedProcess(args, 2, stdout="")

    monkeypatch.setattr(tap, "_ip", refuse)
    with pytest.raises(HostCommandError):
        tap.create("tapdddddddd7777", mtu=1400)
