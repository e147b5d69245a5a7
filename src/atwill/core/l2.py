"""Layer-2 facts of tenant networks: MAC addresses, VXLAN VNIs and the derived MTU."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

MAC_PREFIX = "fa:16:3e"
MAC_RE = re.compile(r"^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$")
VNI_RANGE = (1001, 16_000_000)
# WireGuard over IPv4 costs 60 bytes, over IPv6 80: reserve the larger. VXLAN adds 50.
OVERLAY_OVERHEAD = 80
VXLAN_OVERHEAD = 50
UNDERLAY_MTU = 1500


def random_mac() -> str:
    tail = secrets.token_bytes(3)
    return MAC_PREFIX + "".join(f":{b:02x}" for b in tail)


def normalize_mac(text: object) -> str:
    """A unicast MAC in lower-case colon form; anything else is a ValueError."""
    if not isinstance(text, str) or not MAC_RE.match(text.lower()):
        raise ValueError(f"'{text}' is not a valid MAC address.")
    mac = text.lower().replace("-", ":")
    if int(mac[:2], 16) & 1 or mac == "00:00:00:00:00:00":
        raise ValueError(f"'{text}' is not a valid unicast MAC address.")
    return mac


def lowest_free_vni(used: Iterable[int], low: int = VNI_RANGE[0],
                    high: int = VNI_RANGE[1]) -> int | None:
    taken = set(used)
    candidate = low
    while candidate <= high:
        if candidate not in taken:
            return candidate
        candidate += 1
    return None


def tenant_mtu(underlay_mtu: int = UNDERLAY_MTU, network_type: str = "vxlan") -> int:
    """What a guest may send: the underlay less the overlay and, for VXLAN, its header."""
    if network_type == "flat":
        return underlay_mtu
    return underlay_mtu - OVERLAY_OVERHEAD - VXLAN_OVERHEAD
