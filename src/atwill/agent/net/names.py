"""Host-unique names and numbers for everything the data plane creates on a node.

All lab nodes can share one kernel, so names carry a hash of the node as well as of the
object: `ab` + 6 hex of the node + 5 hex of the network is 13 characters (limit 15).
"""

from __future__ import annotations

import hashlib

BRIDGE_PREFIX = "ab"
VXLAN_PREFIX = "av"
METADATA_IP = "169.254.169.254"
VXLAN_PORT = 4789
# Our policy-routing tables live in one block of table numbers, so they can be told apart.
TABLE_BASE = 0x41570000
TABLE_SPAN = 0x10000
RULE_PRIORITY = 1100
MARK_BASE = 0x41570000  # fwmark/ct mark = MARK_BASE + the domain's table offset


def _hex(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def node_tag(node: str) -> str:
    """Six hex digits naming the node inside interface names."""
    return _hex(node, 6)


def bridge_name(node: str, network_id: str) -> str:
    """The network's bridge on this node."""
    return f"{BRIDGE_PREFIX}{node_tag(node)}{_hex(network_id, 5)}"


def vxlan_name(node: str, network_id: str) -> str:
    """The network's VXLAN device on this node."""
    return f"{VXLAN_PREFIX}{node_tag(node)}{_hex(network_id, 5)}"


def ours(node: str, ifname: str) -> bool:
    """Whether an interface name is one this node's data plane made."""
    tag = node_tag(node)
    return ifname[2:8] == tag and ifname[:2] in (BRIDGE_PREFIX, VXLAN_PREFIX) \
        and len(ifname) == 13


def gateway_mac(network_id: str) -> str:
    """The network's router/DHCP-side MAC: locally administered, the same on every node."""
    digest = hashlib.sha256(f"gw:{network_id}".encode()).digest()
    return "02:a7:" + ":".join(f"{b:02x}" for b in digest[:4])


def table_offset(domain: str, taken: set[int]) -> int:
    """A routing-table offset (1..SPAN-1) for a domain, probing past those already taken."""
    start = int(_hex(domain, 8), 16) % (TABLE_SPAN - 1) + 1
    offset = start
    while offset in taken:
        offset = offset % (TABLE_SPAN - 1) + 1
        if offset == start:
            raise RuntimeError("no free routing table")
    return offset
