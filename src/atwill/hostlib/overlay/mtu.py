"""What fits inside the overlay: the underlay's MTU towards a host, less WireGuard's header.

Used by the agent (its tunnel's MTU) and by the controller (its own peer's).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

WIREGUARD_OVERHEAD = 80  # IPv6 outer header; also safe over IPv4 (60).
DEFAULT_UNDERLAY_MTU = 1500


def _ip_json(*args: str) -> list[dict[str, Any]]:
    return json.loads(subprocess.run(["ip", "-j", *args], capture_output=True, text=True,
                                     check=True).stdout)


def underlay_mtu(host: str) -> int:
    """The MTU of the interface that reaches host, or that holds it when host is local."""
    try:
        dev = _ip_json("route", "get", host)[0]["dev"]
        if dev == "lo":
            # A local address (the controller asking about itself): the interface that
            # carries it, not loopback, sets what fits on the wire.
            for item in _ip_json("addr", "show"):
                if any(a.get("local") == host for a in item.get("addr_info", [])) and \
                        item["ifname"] != "lo":
                    dev = item["ifname"]
        mtu = int(_ip_json("link", "show", dev)[0]["mtu"])
        return DEFAULT_UNDERLAY_MTU if dev == "lo" else mtu
    except (subprocess.CalledProcessError, ValueError, KeyError, IndexError, OSError):
        return DEFAULT_UNDERLAY_MTU
