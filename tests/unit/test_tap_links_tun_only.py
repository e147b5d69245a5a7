"""The agent's view of taps is TUN/TAP devices only: a veth plugged in under a port's
tap name (a bench's port host) is not a guest's tap for the agent to prune."""

from __future__ import annotations

import subprocess

import pytest

from atwill.agent.hypervisor import tap


def test_links_asks_the_kernel_for_tun_devices_only(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str | None, tuple[str, ...]]] = []

    def ip(netns: str | None, *args: str, check: bool = True
           ) -> subprocess.CompletedProcess[str]:
        asked.append((netns, args))
        return subprocess.CompletedProcess(args, 0, stdout='[{"ifname": "tapaaaaaaaa1111", '
                                           '"mtu": 1450, "flags": ["UP"]}]')

    monkeypatch.setattr(tap, "_ip", ip)
    assert tap.links("ns1") == {"tapaaaaaaaa1111": (1450, True)}
    assert asked == [("ns1", ("-j", "link", "show", "type", "tun"))]
