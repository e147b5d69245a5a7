"""Choosing the all-in-one cloud's external (`public`) range so the host loses no route.

`atwill up` puts the public subnet's gateway on a bridge of the host, which gives the
host a route to the whole range. A range that holds an address the host needs (its
own networks, its resolver, a package mirror) would send that traffic to the bridge
instead, so the range must overlap none of them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable
from typing import Any

# Ranges no public service lives in: benchmarking (RFC 2544) and shared address space
# (RFC 6598), then private space unlikely to be a LAN's. Tried in this order.
CANDIDATES = ("198.18.0.0/24", "198.19.254.0/24", "100.64.254.0/24", "100.127.254.0/24",
              "172.31.254.0/24", "10.254.254.0/24", "192.168.254.0/24")
# Kernel-made routes that say nothing about where traffic leaves.
SKIPPED_TYPES = frozenset({"local", "broadcast", "multicast", "anycast", "nat"})
SMALLEST_PREFIX = 29  # a gateway, the pool's first address and room for floating IPs

Net = ipaddress.IPv4Network


@dataclasses.dataclass(frozen=True)
class HostFacts:
    """What the host must keep reaching: each entry is (network, why) for messages."""

    used: tuple[tuple[Net, str], ...] = ()

    def plus(self, entries: Iterable[tuple[str, str]]) -> HostFacts:
        """These facts with more (address or cidr, why); non-IPv4 entries are ignored."""
        extra = []
        for value, why in entries:
            try:
                net = ipaddress.ip_network(value, strict=False)
            except ValueError:
                continue
            if isinstance(net, Net):
                extra.append((net, why))
        return HostFacts(self.used + tuple(extra))


def parse(cidr: str) -> Net:
    """An IPv4 range usable as the public subnet, or ValueError saying why not."""
    try:
        net = ipaddress.ip_network(cidr.strip(), strict=True)
    except ValueError as error:
        raise ValueError(f"public range {cidr!r} is not a network address/prefix "
                         f"({error})") from None
    if not isinstance(net, Net):
        raise ValueError(f"public range {cidr} must be IPv4 (the external network is IPv4)")
    if net.prefixlen > SMALLEST_PREFIX or net.prefixlen < 8:
        raise ValueError(f"public range {cidr} must have a prefix between /8 and "
                         f"/{SMALLEST_PREFIX}")
    return net


def conflicts(cidr: str, facts: HostFacts) -> list[str]:
    """Why this range cannot be the public one on this host (empty: it can)."""
    net = parse(cidr)
    return [why for used, why in facts.used if net.overlaps(used)]


def check(cidr: str, facts: HostFacts) -> Net:
    """The range, or ValueError with one line naming the first conflict."""
    found = conflicts(cidr, facts)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ValueError(f"public range {cidr} overlaps {found[0]}{more}; choose another "
                         "with --public-range CIDR or public_range in atwill.yaml")
    return parse(cidr)


def choose(facts: HostFacts, candidates: Iterable[str] = CANDIDATES) -> Net:
    """The first candidate that overlaps nothing the host uses."""
    for cidr in candidates:
        if not conflicts(cidr, facts):
            return parse(cidr)
    raise ValueError("every candidate public range overlaps something this host uses; "
                     "choose one with --public-range CIDR")


def route_entries(routes: list[dict[str, Any]], ignore_devs: frozenset[str] = frozenset(),
                  ignore_table: Any = None) -> list[tuple[str, str]]:
    """(cidr, why) of the routes in `ip -j route show table all`, but defaults and ours."""
    out = []
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("", "default") or route.get("type", "unicast") in SKIPPED_TYPES:
            continue
        if route.get("dev") in ignore_devs:
            continue
        if ignore_table is not None and ignore_table(route.get("table")):
            continue
        where = f" dev {route['dev']}" if route.get("dev") else ""
        table = f" table {route['table']}" if route.get("table") not in (None, "main") else ""
        out.append((dst, f"the host's route {dst}{where}{table}"))
    return out


def address_entries(links: list[dict[str, Any]],
                    ignore_devs: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(cidr, why) of every IPv4 address's network in `ip -j addr`, but loopback and ours."""
    out = []
    for item in links:
        if item.get("ifname") in ignore_devs or item.get("ifname") == "lo":
            continue
        for info in item.get("addr_info", []):
            if info.get("family") == "inet":
                cidr = f"{info['local']}/{info.get('prefixlen', 32)}"
                out.append((cidr, f"the address {cidr} of {item.get('ifname')}"))
    return out
