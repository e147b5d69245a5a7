"""Subnet address management: CIDRs, gateways, allocation pools, the lowest free address."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import Any

from . import addresses
from .text import shown

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Addr = ipaddress.IPv4Address | ipaddress.IPv6Address

# The smallest subnets that still leave room for a gateway and one port.
MAX_PREFIX = {4: 30, 6: 126}


class InvalidSubnet(ValueError):
    """A CIDR, gateway or pool that cannot describe a usable subnet."""


def parse_address(text: Any, what: str = "IP address") -> Addr:
    """A plain address (no scope id, nothing around it), strictly parsed."""
    try:
        return addresses.ip(text)
    except addresses.InvalidAddress:
        raise InvalidSubnet(f"{shown(text)} is not a valid {what}.") from None


def parse_cidr(text: Any, ip_version: int | None = None) -> Net:
    """A subnet CIDR: well-formed, no host bits, the right family, not too small, not /0."""
    try:
        net = addresses.prefix(text, need_length=True)
    except addresses.InvalidAddress:
        raise InvalidSubnet(f"{shown(text)} is not a valid CIDR: expected address/prefix.") \
            from None
    if net.network_address != ipaddress.ip_interface(text).ip:
        raise InvalidSubnet(f"{shown(text)} isn't a recognized IP subnet cidr, '{net}' is "
                            "recommended: the host bits must be zero.")
    if ip_version is not None and net.version != ip_version:
        raise InvalidSubnet(f"CIDR {text} is not an IPv{ip_version} network "
                            f"(ip_version is {ip_version}).")
    if net.prefixlen == 0:
        # Neutron refuses a subnet covering the whole address space (it would swallow
        # every route and every other subnet).
        raise InvalidSubnet(f"{net} is not allowed as a subnet CIDR: the prefix length "
                            "must be at least 1.")
    if net.prefixlen > MAX_PREFIX[net.version]:
        raise InvalidSubnet(f"CIDR {text} is too small: the prefix length must be at most "
                            f"{MAX_PREFIX[net.version]} for IPv{net.version}.")
    return net


def parse_destination(text: Any) -> Net:
    """A route destination: address/length, any prefix length, host bits zero."""
    try:
        return addresses.prefix(text, need_length=True, strict=True)
    except addresses.InvalidAddress:
        raise InvalidSubnet(f"{shown(text)} is not a valid destination CIDR.") from None


def first_host(net: Net) -> Addr:
    return net.network_address + 1


def last_host(net: Net) -> Addr:
    """IPv4 keeps the broadcast address out; IPv6 has none."""
    return net.broadcast_address - 1 if net.version == 4 else net.broadcast_address


def check_gateway(net: Net, text: str) -> Addr:
    gateway = parse_address(text, "gateway IP")
    if gateway.version != net.version or gateway not in net:
        raise InvalidSubnet(f"Gateway IP {text} is not in subnet {net}.")
    if gateway == net.network_address or (net.version == 4 and
                                          gateway == net.broadcast_address):
        raise InvalidSubnet(f"Gateway IP {text} conflicts with the network or broadcast "
                            f"address of {net}.")
    return gateway


def default_pools(net: Net, gateway: Addr | None) -> list[tuple[Addr, Addr]]:
    """Every host address except the gateway, as one or two ranges."""
    first, last = first_host(net), last_host(net)
    if gateway is None or not first <= gateway <= last:
        return [(first, last)]
    pools = []
    if gateway > first:
        pools.append((first, gateway - 1))
    if gateway < last:
        pools.append((gateway + 1, last))
    return pools


def parse_pools(net: Net, raw: Any, gateway: Addr | None) -> list[tuple[Addr, Addr]]:
    """Allocation pools [{"start", "end"}]: inside the subnet, ordered, disjoint, no gateway."""
    if not isinstance(raw, list):
        raise InvalidSubnet("allocation_pools must be a list of {start, end} objects.")
    pools = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"start", "end"}:
            raise InvalidSubnet("Each allocation pool needs exactly 'start' and 'end'.")
        start, end = parse_address(item["start"]), parse_address(item["end"])
        if start.version != net.version or end.version != net.version or start > end:
            raise InvalidSubnet(f"Invalid allocation pool {item['start']}-{item['end']}.")
        if start < first_host(net) or end > last_host(net):
            raise InvalidSubnet(f"The allocation pool {start}-{end} spans beyond the "
                                f"subnet cidr {net}.")
        if gateway is not None and start <= gateway <= end:
            raise InvalidSubnet(f"Gateway ip {gateway} conflicts with allocation pool "
                                f"{start}-{end}.")
        pools.append((start, end))
    pools.sort()
    for (_, end), (start, end2) in zip(pools, pools[1:], strict=False):
        if start <= end:
            raise InvalidSubnet(f"Found overlapping allocation pools: {start}-{end2} "
                                "overlaps another pool.")
    return pools


def pools_api(pools: Iterable[tuple[Addr, Addr]]) -> list[dict[str, str]]:
    return [{"start": str(start), "end": str(end)} for start, end in pools]


def pools_from_api(raw: Iterable[dict[str, str]]) -> list[tuple[Addr, Addr]]:
    return [(ipaddress.ip_address(p["start"]), ipaddress.ip_address(p["end"])) for p in raw]


def overlapping(net: Net, others: Iterable[str]) -> str | None:
    """The first of others (CIDR strings) that overlaps net, if any."""
    for other in others:
        candidate = ipaddress.ip_network(other)
        if candidate.version == net.version and candidate.overlaps(net):
            return other
    return None


def lowest_free(pools: Iterable[tuple[Addr, Addr]], used: Iterable[str]) -> Addr | None:
    """The lowest address of the pools that is not in used (None when all are taken)."""
    return next(free_addresses(pools, used), None)


def free_addresses(pools: Iterable[tuple[Addr, Addr]], used: Iterable[str]) -> Iterator[Addr]:
    """The addresses of the pools not in used, lowest first, lazily (pools may be huge)."""
    taken = {ipaddress.ip_address(u) for u in used}
    for start, end in sorted(pools):
        candidate = start
        # Each step either yields or skips one taken address.
        while candidate <= end:
            if candidate not in taken:
                yield candidate
            candidate += 1


def check_fixed_ip(net: Net, text: Any, gateway: str | None,
                   router_port: bool = False) -> Addr:
    """A requested fixed IP: in the subnet, a host address, and not its gateway."""
    address = parse_address(text)
    if address.version != net.version or address not in net:
        raise InvalidSubnet(f"IP address {shown(text)} is not a valid IP for the specified "
                            "subnet.")
    if address == net.network_address or (net.version == 4 and
                                          address == net.broadcast_address):
        raise InvalidSubnet(f"IP address {text} is the network or broadcast address of "
                            f"{net}.")
    if not router_port and gateway is not None and address == ipaddress.ip_address(gateway):
        raise InvalidSubnet(f"IP address {text} is the gateway of subnet {net}; only a "
                            "router interface may take it.")
    return address
