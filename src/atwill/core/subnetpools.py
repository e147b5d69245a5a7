"""Subnet pool arithmetic: prefixes, prefix-length bounds and the first free prefix."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from . import addresses
from .text import shown

Net = ipaddress.IPv4Network | ipaddress.IPv6Network

BITS = {4: 32, 6: 128}
# Neutron's defaults: a pool hands out nothing larger than a /8 (IPv4) or /64 (IPv6)
# unless told otherwise.
DEFAULT_MIN = {4: 8, 6: 64}
# default_quota counts addresses for IPv4 and /64 networks for IPv6, as in Neutron.
QUOTA_UNIT = {4: 32, 6: 64}


class InvalidPool(ValueError):
    """Prefixes or prefix lengths a pool cannot have."""


class PoolExhausted(ValueError):
    """No free prefix of the wanted length is left in the pool."""


def parse_prefixes(raw: Any, ip_version: int | None = None) -> list[Net]:
    """A non-empty list of CIDRs of one family, merged as Neutron stores them."""
    if not isinstance(raw, list) or not raw:
        raise InvalidPool("prefixes must be a non-empty list of CIDRs.")
    nets = []
    for text in raw:
        try:
            net = addresses.prefix(text, need_length=True, strict=False)
        except addresses.InvalidAddress:
            raise InvalidPool(f"{shown(text)} is not a valid CIDR.") from None
        nets.append(net)
    versions = {n.version for n in nets} | ({ip_version} if ip_version else set())
    if len(versions) > 1:
        raise InvalidPool("Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
    return merged(nets)


def merged(nets: Iterable[Net]) -> list[Net]:
    return list(ipaddress.collapse_addresses(nets))  # type: ignore[arg-type]


def as_text(nets: Iterable[Net]) -> list[str]:
    return [str(n) for n in nets]


def from_text(raw: Iterable[str]) -> list[Net]:
    return [ipaddress.ip_network(t) for t in raw]


def prefix_length(value: Any, what: str, ip_version: int) -> int:
    """An integer prefix length of the family (strings of digits accepted, as Neutron)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or \
            not 0 <= value <= BITS[ip_version]:
        raise InvalidPool(f"Invalid input for {what}. Reason: '{shown(value)}' is not an "
                          f"integer between 0 and {BITS[ip_version]}.")
    return value


def bounds(data: dict[str, Any], ip_version: int, current: dict[str, int] | None = None
           ) -> dict[str, int]:
    """min_prefixlen <= default_prefixlen <= max_prefixlen, defaults filled in.

    On update (current given) the minimum may only fall and the maximum only rise:
    subnets already allocated must stay within the bounds.
    """
    old = current or {}
    out: dict[str, int] = {}
    for key, fallback in (("min_prefixlen", old.get("min_prefixlen", DEFAULT_MIN[ip_version])),
                          ("max_prefixlen", old.get("max_prefixlen", BITS[ip_version]))):
        given = data.get(key)
        out[key] = fallback if given is None else prefix_length(given, key, ip_version)
    given = data.get("default_prefixlen")
    out["default_prefixlen"] = prefix_length(given, "default_prefixlen", ip_version) \
        if given is not None else old.get("default_prefixlen", out["min_prefixlen"])
    if not out["min_prefixlen"] <= out["default_prefixlen"] <= out["max_prefixlen"]:
        raise InvalidPool("Illegal prefix bounds: min_prefixlen <= default_prefixlen <= "
                          "max_prefixlen is required.")
    if current and (out["min_prefixlen"] > old["min_prefixlen"] or
                    out["max_prefixlen"] < old["max_prefixlen"]):
        raise InvalidPool("Illegal update to prefix bounds: min_prefixlen may only be "
                          "decreased and max_prefixlen only increased.")
    return out


def within(net: Net, prefixes: Iterable[Net]) -> bool:
    return any(net.version == p.version and net.subnet_of(p)  # type: ignore[arg-type]
               for p in prefixes)


def check_request(net: Net, prefixes: list[Net], limits: dict[str, int]) -> None:
    """A specific CIDR asked of the pool: inside it, and of an allowed length."""
    if not within(net, prefixes):
        raise InvalidPool(f"Cidr {net} is not within the subnet pool's prefixes "
                          f"({', '.join(as_text(prefixes))}).")
    if not limits["min_prefixlen"] <= net.prefixlen <= limits["max_prefixlen"]:
        raise InvalidPool(f"Prefix length {net.prefixlen} is outside the pool's bounds "
                          f"{limits['min_prefixlen']} to {limits['max_prefixlen']}.")


def allocate(prefixes: list[Net], used: Iterable[Net], prefixlen: int) -> Net:
    """The first (lowest) network of prefixlen inside prefixes that overlaps nothing used."""
    taken = sorted(merged(used), key=lambda n: n.network_address)
    for prefix in prefixes:
        if prefixlen < prefix.prefixlen:
            continue
        candidate = ipaddress.ip_network((prefix.network_address, prefixlen))
        while candidate.subnet_of(prefix):  # type: ignore[arg-type]
            clash = next((t for t in taken if t.overlaps(candidate)), None)
            if clash is None:
                return candidate
            # Jump past the clash (or to the next candidate when the clash is smaller).
            after = int(max(clash.broadcast_address, candidate.broadcast_address)) + 1
            step = 2 ** (BITS[prefix.version] - prefixlen)
            after = -(-after // step) * step
            if after >= 2 ** BITS[prefix.version]:
                break
            candidate = ipaddress.ip_network((after, prefixlen))
    raise PoolExhausted(f"Insufficient prefix space to allocate subnet size /{prefixlen}.")


def removable(removed: list[Net], allocated: Iterable[Net]) -> None:
    """Refuse removing prefixes that still hold allocated subnets."""
    for net in allocated:
        if any(net.overlaps(r) for r in removed):
            raise InvalidPool(f"Illegal update to prefixes: prefix {net} is in use by a "
                              "subnet allocated from the pool.")


def without(prefixes: list[Net], removed: list[Net]) -> list[Net]:
    """The pool's prefixes with removed address space cut out."""
    out: list[Net] = []
    for prefix in prefixes:
        parts = [prefix]
        for cut in removed:
            parts = [piece for part in parts for piece in _cut(part, cut)]
        out.extend(parts)
    return merged(out)


def _cut(part: Net, cut: Net) -> list[Net]:
    if part.version != cut.version or not part.overlaps(cut):
        return [part]
    if part.subnet_of(cut):  # type: ignore[arg-type]
        return []
    return list(part.address_exclude(cut))  # type: ignore[arg-type]


def quota_units(net: Net) -> int:
    """The size of net in default_quota's units."""
    return 2 ** max(0, QUOTA_UNIT[net.version] - net.prefixlen)
