"""Overlay address allocation: pure, stable, never by connection order.

The controllers of a cloud hold CONTROLLER_SLOTS reserved addresses: the first host of
the overlay network (the one controller of a cloud before there were several, so its
address never moves) and then the highest hosts, counting down. Nodes are given the
lowest free address that is no controller's slot, so the two never meet until the
network is full.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

CONTROLLER_SLOTS = 16  # as many as an agent keeps controller URLs (core/controller_urls)


def controller_address(cidr: str) -> str:
    """The first controller's address: the first host of the overlay network."""
    return str(next(ipaddress.ip_network(cidr).hosts()))


def controller_slots(cidr: str) -> list[str]:
    """Every address a controller may hold, in the order they are handed out."""
    network = ipaddress.ip_network(cidr)
    first = network.network_address + 1
    last = network.broadcast_address - (1 if network.version == 4 else 0)
    count = min(CONTROLLER_SLOTS, max(int(last) - int(first) + 1, 0))
    if count == 0:
        raise ValueError(f"the overlay network {cidr} holds no address")
    return [str(first)] + [str(last - k) for k in range(count - 1) if last - k > first]


def free_controller_slot(cidr: str, taken: Iterable[str]) -> str:
    """The first controller slot no other controller holds; ValueError when all are."""
    held = {str(a) for a in taken}
    for address in controller_slots(cidr):
        if address not in held:
            return address
    raise ValueError(f"all {CONTROLLER_SLOTS} controller addresses of {cidr} are taken")


def allocate(cidr: str, used: Iterable[str]) -> str:
    """The lowest free host address that is no controller's; ValueError when full."""
    network = ipaddress.ip_network(cidr)
    taken = {ipaddress.ip_address(a) for a in used}
    taken |= {ipaddress.ip_address(a) for a in controller_slots(cidr)}
    for address in network.hosts():
        if address not in taken:
            return str(address)
    raise ValueError(f"the overlay network {cidr} is full")


def prefix_length(cidr: str) -> int:
    return ipaddress.ip_network(cidr).prefixlen


def within(cidr: str, address: str) -> bool:
    """Whether address (a connection's source) is one of the overlay network's: such a
    source came through the tunnel itself and says nothing of where its sender is on the
    underlay (an IPv4-mapped IPv6 source counts as its IPv4 address)."""
    try:
        source = ipaddress.ip_address(address.split("%", 1)[0])
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    if isinstance(source, ipaddress.IPv6Address) and source.ipv4_mapped is not None:
        source = source.ipv4_mapped
    return source.version == network.version and source in network
