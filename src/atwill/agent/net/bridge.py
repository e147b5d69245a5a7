"""Bridge ports, forwarding entries and static neighbours through `bridge` and `ip neigh`."""

from __future__ import annotations

import json
from typing import Any

from atwill.hostlib.run import run


def set_port(ifname: str, learning: bool) -> None:
    """Set a bridge port's MAC learning."""
    run(["bridge", "link", "set", "dev", ifname, "learning", "on" if learning else "off"])


def fdb(ifname: str) -> list[dict[str, Any]]:
    """The forwarding entries of one device, in `bridge -j fdb` form."""
    done = run(["bridge", "-j", "fdb", "show", "dev", ifname], check=False)
    result: list[dict[str, Any]] = json.loads(done.stdout or "[]") if done.returncode == 0 else []
    return result


def fdb_append(ifname: str, mac: str, dst: str) -> None:
    """Add a VXLAN device entry sending mac to the VTEP dst (append allows several)."""
    run(["bridge", "fdb", "append", mac, "dev", ifname, "dst", dst])


def fdb_del(ifname: str, mac: str, dst: str | None = None, master: bool = False) -> None:
    """Remove a forwarding entry (of the VXLAN device, or the bridge's if master)."""
    args = ["bridge", "fdb", "del", mac, "dev", ifname]
    args += ["master"] if master else (["dst", dst] if dst else [])
    run(args, check=False)


def fdb_static(ifname: str, mac: str) -> None:
    """Tell the bridge mac lives behind port ifname (so it is not flooded)."""
    run(["bridge", "fdb", "replace", mac, "dev", ifname, "master", "static"])


def neighbours(ifname: str) -> dict[str, str]:
    """Permanent neighbour entries on a device: ip -> MAC."""
    done = run(["ip", "-j", "neigh", "show", "dev", ifname, "nud", "permanent"], check=False)
    entries = json.loads(done.stdout or "[]") if done.returncode == 0 else []
    return {e["dst"]: e.get("lladdr", "") for e in entries}


def neighbour_set(ifname: str, ip: str, mac: str) -> None:
    """Pin ip to mac on a device (remote ports, whose ARP we never flood)."""
    run(["ip", "neigh", "replace", ip, "lladdr", mac, "dev", ifname, "nud", "permanent"])


def neighbour_del(ifname: str, ip: str) -> None:
    """Remove a neighbour entry."""
    run(["ip", "neigh", "del", ip, "dev", ifname], check=False)
