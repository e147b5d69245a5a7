"""TAP devices for guest NICs: create (down), plug into a bridge, delete — each idempotent.

In this process's own namespace the agent's taps are listed and made by ioctl
(tapdev.py), not by `ip` runs on the way to each start; in another namespace (tests,
the lab's tools), and to plug a tap into a bridge, `ip` does it.
"""

from __future__ import annotations

import json
import subprocess

from atwill.agent.hypervisor import tapdev
from atwill.hostlib.run import run

PREFIX = "tap"
IFNAMSIZ = 15


def tap_name(port_id: str) -> str:
    """The tap of a port: "tap" + 12 hex digits of its id, the most IFNAMSIZ allows."""
    return PREFIX + port_id.replace("-", "")[:IFNAMSIZ - len(PREFIX)]


def links(netns: str | None = None) -> dict[str, tuple[int, bool]]:
    """Every TUN/TAP device here: name -> (MTU, administratively up), in one command.
    Only those: another interface under a tap's name (a veth some tool plugged in for a
    port, as `atwill bench` does) is not a guest's, and not the agent's to remove."""
    if netns is None:
        return _kernel.links()
    out = _ip(netns, "-j", "link", "show", "type", "tun").stdout
    return {link["ifname"]: (int(link.get("mtu", 0)), "UP" in link.get("flags", []))
            for link in json.loads(out or "[]")}


def ensure(wanted: dict[str, int | None], netns: str | None = None,
           present: dict[str, tuple[int, bool]] | None = None) -> None:
    """Make each wanted tap (name -> MTU) that is missing or of another MTU, down (a tap
    that is down is as it should be until the data plane plugs it); `present`: what
    links() said just before (one `ip` run fewer)."""
    present = links(netns) if present is None else present
    for name, mtu in wanted.items():
        have = present.get(name)
        if have is None or (mtu is not None and have[0] != mtu):
            create(name, mtu=mtu, netns=netns)
        elif netns is None and have[1] and not _kernel.plugged(name):
            _kernel.set_down(name)  # up on no bridge (an older agent's): off, as made


def exists(name: str, netns: str | None = None) -> bool:
    """Whether the interface exists."""
    return _ip(netns, "link", "show", "dev", name, check=False).returncode == 0


def create(name: str, bridge: str | None = None, mtu: int | None = None,
           netns: str | None = None) -> None:
    """Make the tap (persistent, for QEMU to open) and set its MTU. Without a bridge it
    is left DOWN, and in this namespace without IPv6: the data plane switches it on once
    it has plugged it into its network's bridge, behind that port's rules (plane._ports).
    A tap that is up but on no bridge is an interface of the host's own stack, outside
    every bridge rule, which the `inet atwill` table lets through (it filters what comes
    from the bridges): the guest would reach the host's addresses and services, and
    forged-source VXLAN on port 4789 would reach other tenants' networks.
    With a bridge (the host tests' own taps, in their namespace) it is plugged, then up."""
    if len(name) > IFNAMSIZ:
        raise ValueError(f"interface name {name!r} is longer than {IFNAMSIZ}")
    if netns is None and bridge is None:
        _kernel.add(name)  # an interface of that name is kept as it is
        _kernel.disable_ipv6(name)
        _kernel.set_mtu(name, mtu)
        return
    # Added first, asked only if that fails (an interface of that name is kept as it
    # is): each `ip` run here is milliseconds on the way to a VM's start.
    if _ip(netns, "tuntap", "add", "dev", name, "mode", "tap", check=False).returncode:
        if not exists(name, netns):
            _ip(netns, "tuntap", "add", "dev", name, "mode", "tap")  # raises, with ip's error
    more = [*(["mtu", str(mtu)] if mtu is not None else []),
            *(["master", bridge, "up"] if bridge is not None else [])]
    if more:
        _ip(netns, "link", "set", "dev", name, *more)


def delete(name: str, netns: str | None = None) -> None:
    """Remove the tap if it exists."""
    if exists(name, netns):
        _ip(netns, "link", "del", "dev", name, check=False)


# The kernel calls for this namespace (tests put a fake in its place).
_kernel = tapdev


def _ip(netns: str | None, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    return run([*prefix, *args], check=check)
