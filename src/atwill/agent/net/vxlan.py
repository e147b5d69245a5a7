"""VXLAN forwarding entries: what a network's device should hold, and the diff to get there."""

from __future__ import annotations

from atwill.agent.net import bridge
from atwill.agent.net.model import Network

FLOOD = "00:00:00:00:00:00"


def desired_fdb(network: Network) -> set[tuple[str, str]]:
    """(MAC, VTEP) pairs: all-zero per remote VTEP (head-end replication), one per remote port."""
    vteps = set(network.remote_vteps) | {p.vtep for p in network.remote_ports}
    entries = {(FLOOD, vtep) for vtep in vteps}
    return entries | {(p.mac.lower(), p.vtep) for p in network.remote_ports}


def diff(current: set[tuple[str, str]],
         desired: set[tuple[str, str]]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(to add, to remove)."""
    return desired - current, current - desired


def current_fdb(ifname: str) -> set[tuple[str, str]]:
    """(MAC, VTEP) pairs the device holds now."""
    return {(e["mac"].lower(), e["dst"]) for e in bridge.fdb(ifname)
            if "dst" in e and "master" not in e}


def converge(ifname: str, network: Network) -> None:
    """Make the device's entries exactly the desired ones."""
    add, remove = diff(current_fdb(ifname), desired_fdb(network))
    for mac, dst in sorted(remove):
        bridge.fdb_del(ifname, mac, dst)
    for mac, dst in sorted(add):
        bridge.fdb_append(ifname, mac, dst)
