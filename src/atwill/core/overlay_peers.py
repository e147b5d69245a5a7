"""A node's WireGuard peers when a cloud has several controllers: which controller
records become peers, and which node records may sit beside them.

Every controller writes its own overlay record (its public key, its overlay address, the
endpoint nodes dial and its API's URL through the overlay) into the registry only
controllers write (controller/controllers.py); nodes learn them from their desired
state, which only an authenticated controller answers. Nothing here trusts a record:

- a controller record is used only whole: a WireGuard key (base64 of 32 bytes), an
  address that is one of the overlay's controller slots (core/overlay), an endpoint
  "host:port", an https overlay URL whose host is that address; two records claiming
  one address or one key keep the first (the caller orders them oldest first);
- a node record (its key came from the node at join) never carries a controller's key
  or address, nor another node's key: such a record is dropped, so no node can put
  itself in the place of a controller (or of another node) in anyone's peer list.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from .controller_urls import MAX_URLS, unique
from .controller_urls import valid as valid_url
from .overlay import controller_slots

KEEPALIVE = 25
MAX_ENDPOINT = 300


def valid_key(key: Any) -> bool:
    """A WireGuard public key: base64 of exactly 32 bytes."""
    if not isinstance(key, str) or len(key) != 44:
        return False
    try:
        return len(base64.b64decode(key, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def valid_endpoint(endpoint: Any) -> bool:
    """"host:port" (an IPv6 host in brackets), port 1-65535, nothing else."""
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > MAX_ENDPOINT:
        return False
    if not endpoint.isprintable() or any(c.isspace() or c in "/@?#" for c in endpoint):
        return False
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return False
    if host.startswith("["):
        try:
            return host.endswith("]") and ipaddress.ip_address(host[1:-1]).version == 6
        except ValueError:
            return False
    return ":" not in host and "[" not in host and "]" not in host


def controller_peer(record: dict[str, Any], cidr: str) -> dict[str, Any] | None:
    """A node's peer entry for one controller record, or None when any part is not
    what a controller writes."""
    key, address = record.get("public_key"), record.get("overlay_ip")
    endpoint, url = record.get("endpoint"), record.get("overlay_url")
    if not valid_key(key) or not valid_endpoint(endpoint) or not isinstance(address, str):
        return None
    if address not in controller_slots(cidr):
        return None
    if url is not None and (not valid_url(url) or urlsplit(url).hostname != address):
        return None
    return {"name": f"controller-{address}", "public_key": key, "overlay_ip": address,
            "endpoint": endpoint, "keepalive": KEEPALIVE, "overlay_url": url}


def controller_peers(records: Iterable[dict[str, Any]], cidr: str) -> list[dict[str, Any]]:
    """The controllers' peers, in the records' order: invalid ones and repeats of an
    address or a key already listed left out; at most MAX_URLS."""
    peers: list[dict[str, Any]] = []
    for record in records:
        peer = controller_peer(record, cidr)
        if peer is None or any(p["overlay_ip"] == peer["overlay_ip"]
                               or p["public_key"] == peer["public_key"] for p in peers):
            continue
        peers.append(peer)
    return peers[:MAX_URLS]


def node_peers(nodes: Iterable[dict[str, Any]], controllers: list[dict[str, Any]],
               cidr: str) -> list[dict[str, Any]]:
    """The other nodes' peers: a node whose key is a controller's or an earlier node's,
    or whose address is a controller slot, is left out."""
    keys = {p["public_key"] for p in controllers}
    slots = set(controller_slots(cidr)) | {p["overlay_ip"] for p in controllers}
    kept: list[dict[str, Any]] = []
    for node in nodes:
        key = node.get("public_key")
        if (key and key in keys) or node.get("overlay_ip") in slots:
            continue
        if key:
            keys.add(key)
        kept.append(node)
    return kept


def overlay_urls(controllers: list[dict[str, Any]]) -> list[str]:
    """The controllers' API URLs through the overlay, in peer order (for the agents'
    failover list, before the underlay URLs)."""
    return unique(p["overlay_url"] for p in controllers if p.get("overlay_url"))


def failover_list(overlay: list[str], underlay: list[str]) -> list[str]:
    """What an agent fails over between: the overlay URLs first, then the others, at
    most MAX_URLS (the overlay ones are kept; an agent refuses a longer list)."""
    return unique([*overlay, *underlay])[:MAX_URLS]
