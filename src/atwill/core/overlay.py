"""Overlay address allocation: pure, stable, never by connection order."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def controller_address(cidr: str) -> str:
    """The controller is the first host of the overlay network."""
    return str(next(ipaddress.ip_network(cidr).hosts()))


def allocate(cidr: str, used: Iterable[str]) -> str:
    """The lowest free host address after the controller's; ValueError when full."""
    network = ipaddress.ip_network(cidr)
    taken = {ipaddress.ip_address(a) for a in used}
    hosts = network.hosts()
    next(hosts)  # the controller's
    for address in hosts:
        if address not in taken:
            return str(address)
    raise ValueError(f"the overlay network {cidr} is full")


def prefix_length(cidr: str) -> int:
    return ipaddress.ip_network(cidr).prefixlen
