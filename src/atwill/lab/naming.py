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
INET = "inet"
HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,10}$")
IFNAME_MAX = 15
CONTROLLER_OCTET = 2
FIRST_NODE_OCTET = 10
# Several controllers (ctl, ctl2, ...) take .2 to .8; PostgreSQL's host is .9.
MAX_CONTROLLERS = 7
DATABASE = "pg"
DATABASE_OCTET = 9


def lab_name(raw: str) -> str:
    """Lower-case, keep letters and digits, at most 4 characters."""
    name = re.sub(r"[^a-z0-9]", "", raw.lower())[:MAX_LAB_NAME]
    if not name:
        raise ValueError(f"lab name {raw!r} has no letters or digits")
    return name


def host_name(raw: str) -> str:
    """Check a host name: it becomes part of a namespace and an interface name."""
    if not HOST_NAME.match(raw) or raw in (WAN, INET):
        raise ValueError(f"host name {raw!r}: expected a lower-case letter then up to 10 "
                         f"letters, digits or '-' (and not {WAN!r} or {INET!r})")
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


def controller_name(index: int) -> str:
    """The controller hosts: ctl (the first, whose init made the cloud), then ctl2, ctl3..."""
    if not 1 <= index <= MAX_CONTROLLERS:
        raise ValueError(f"a lab has 1 to {MAX_CONTROLLERS} controllers, not {index}")
    return CONTROLLER if index == 1 else f"{CONTROLLER}{index}"


def controller_octet(index: int) -> int:
    controller_name(index)  # checks the range
    return CONTROLLER_OCTET + index - 1


def cloud_host(lab: str) -> str:
    """The name of a lab cloud with several controllers: every lab host resolves it to
    every controller's address (its /etc/netns hosts file), as a DNS name would."""
    return f"cloud.{lab}.lab"


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


# The "internet": one segment shared by every node's external bridge (docs/dataplane.md).
# It owns the public subnet's gateway (.1) and an address beyond it that stands for the
# rest of the world. Nodes' own uplink addresses sit outside the floating-IP pool of the
# default public subnet (.10-.250, controller/network/defaults.py), so IPAM never hands
# them out.
EXTERNAL_CIDR = ipaddress.IPv4Network("203.0.113.0/24")
INET_BRIDGE = "br-inet"
INET_GATEWAY = "203.0.113.1"
INTERNET_IP = "198.51.100.1"
NODE_EXTERNAL_OCTETS = (*range(2, 10), *range(251, 255))
NODE_EXTERNAL_BRIDGE = "br-ext"
NODE_EXTERNAL_PORT = "ext0"


def inet_veth(host: str) -> str:
    """The internet-side end of a node's external link (the node side is ext0)."""
    name = f"x-{host}"
    assert len(name) <= IFNAME_MAX, name
    return name


def external_address(used: set[str]) -> str:
    """The lowest free node uplink address (CIDR), outside the floating-IP pool."""
    for octet in NODE_EXTERNAL_OCTETS:
        address = f"{EXTERNAL_CIDR.network_address + octet}/{EXTERNAL_CIDR.prefixlen}"
        if address not in used:
            return address
    raise ValueError(f"no node uplink address left on {EXTERNAL_CIDR} "
                     f"(octets {NODE_EXTERNAL_OCTETS[0]}-9 and 251-254)")
