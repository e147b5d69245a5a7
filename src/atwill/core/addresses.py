"""Strict IP addresses and prefixes for tenant input.

Python's ipaddress accepts IPv6 scope ids made of any text ("fe80::1%x\\n}\\nflush
ruleset"), and such a value would reach nftables and dnsmasq configs on the nodes.
Every tenant field holding an address or prefix goes through these parsers: a string
of address characters only (no scope id, no whitespace, no surrounding text), of the
expected family.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .errors import BadRequest
from .text import shown

Addr = ipaddress.IPv4Address | ipaddress.IPv6Address
Net = ipaddress.IPv4Network | ipaddress.IPv6Network

# Hex digits, colons and dots for the address; digits (or a dotted mask) after one slash.
_ADDRESS = re.compile(r"[0-9A-Fa-f:.]{2,45}")
_PREFIX = re.compile(r"[0-9A-Fa-f:.]{2,45}(/[0-9.]{1,15})?")
_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}")
# Longer than any address or prefix: refuse before a regex or ipaddress sees it.
_LONGEST = 64


class InvalidAddress(ValueError):
    """Not a plain IP address or prefix of the wanted family."""


def _family(value: Addr | Net, version: int | None, text: str) -> None:
    if version is not None and value.version != version:
        raise InvalidAddress(f"{shown(text)} is not an IPv{version} address.")


def ip(value: Any, version: int | None = None) -> Addr:
    """A bare IPv4 or IPv6 address, or InvalidAddress."""
    if not isinstance(value, str) or len(value) > _LONGEST or \
            not _ADDRESS.fullmatch(value):
        raise InvalidAddress(f"{shown(value)} is not a valid IP address.")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidAddress(f"{shown(value)} is not a valid IP address.") from None
    _family(address, version, value)
    return address


def prefix(value: Any, version: int | None = None, need_length: bool = False,
           strict: bool = False) -> Net:
    """An address or address/length (host bits allowed unless strict), or InvalidAddress."""
    if not isinstance(value, str) or len(value) > _LONGEST or \
            not _PREFIX.fullmatch(value) or (need_length and "/" not in value):
        raise InvalidAddress(f"{shown(value)} is not a valid IP prefix (address/length).")
    try:
        net = ipaddress.ip_network(value, strict=strict)
    except ValueError:
        raise InvalidAddress(f"{shown(value)} is not a valid IP prefix (address/length).") \
            from None
    _family(net, version, value)
    return net


def ip_field(value: Any, field: str, version: int | None = None) -> Addr:
    """ip() for an API field: Neutron's 400 naming the field."""
    try:
        return ip(value, version)
    except InvalidAddress as err:
        raise BadRequest(f"Invalid input for {field}. Reason: {err}") from None


def prefix_field(value: Any, field: str, version: int | None = None,
                 need_length: bool = False, strict: bool = False) -> Net:
    """prefix() for an API field: Neutron's 400 naming the field."""
    try:
        return prefix(value, version, need_length, strict)
    except InvalidAddress as err:
        raise BadRequest(f"Invalid input for {field}. Reason: {err}") from None


def mac(value: Any) -> str:
    """A unicast MAC in lower-case colon form (fullmatch: no trailing newline), or
    InvalidAddress."""
    if not isinstance(value, str) or len(value) > _LONGEST or not _MAC.fullmatch(value):
        raise InvalidAddress(f"{shown(value)} is not a valid MAC address.")
    text = value.lower().replace("-", ":")
    if int(text[:2], 16) & 1 or text == "00:00:00:00:00:00":
        raise InvalidAddress(f"{shown(value)} is not a valid unicast MAC address.")
    return text


def mac_field(value: Any, field: str) -> str:
    """mac() for an API field: Neutron's 400 naming the field."""
    try:
        return mac(value)
    except InvalidAddress as err:
        raise BadRequest(f"Invalid input for {field}. Reason: {err}") from None
