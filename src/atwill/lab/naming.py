"""Names and addresses of a lab: pure functions, no I/O.

Every lab host shares one kernel, one /var/run and one process table, so every
name a lab creates is derived from the lab's short name and checked here.
"""

from __future__ import annotations

import ipaddress
import re
import zlib

MAX_LAB_NAME = 4
NAMESPACE_PREFIX = "awl-"
CONTROLLER = "ctl"
WAN = "wan"
HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,10}$")
IFNAME_MAX = 15
CONTROLLER_OCTET = 2
FIRST_NODE_OCTET = 10


def lab_name(raw: str) -> str:
    """Lower-case, keep letters and digits, at most 4 characters."""
    name = re.sub(r"[^a-z0-9]", "", raw.lower())[:MAX_LAB_NAME]
    if not name:
        raise ValueError(f"lab name {raw!r} has no letters or digits")
    return name


def host_name(raw: str) -> str:
    """Check a host name: it becomes part of a namespace and an interface name."""
    if not HOST_NAME.match(raw) or raw == WAN:
        raise ValueError(f"host name {raw!r}: expected a lower-case letter then up to 10 "
                         f"letters, digits or '-' (and not {WAN!r})")
    return raw


def namespace(lab: str, host: str) -> str:
    return f"{NAMESPACE_PREFIX}{lab}-{host}"


def wan_veth(host: str) -> str:
    """The WAN-side end of a host's access link (the host side is always wan0)."""
    name = f"w-{host}"
    assert len(name) <= IFNAME_MAX, name
    return name


def subnet(lab: str) -> ipaddress.IPv4Network:
    """172.31.X.0/24 with X derived from the lab name, so it is stable across runs."""
    return ipaddress.IPv4Network(f"172.31.{zlib.crc32(lab.encode()) % 254 + 1}.0/24")


def address(lab: str, octet: int) -> str:
    """The CIDR of one host on the lab's WAN."""
    net = subnet(lab)
    if not 1 < octet < 255:
        raise ValueError(f"no address left on {net}")
    return f"{net.network_address + octet}/{net.prefixlen}"


def next_octet(used: set[int]) -> int:
    """The lowest free node address (controller .2, nodes from .10)."""
    octet = FIRST_NODE_OCTET
    while octet in used:
        octet += 1
    if octet > 254:
        raise ValueError("the lab's WAN /24 is full")
    return octet


def next_node_name(existing: set[str]) -> str:
    index = 1
    while f"node{index}" in existing:
        index += 1
    return f"node{index}"
