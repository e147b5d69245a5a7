"""Several controllers on one WireGuard overlay (core/overlay, core/overlay_peers): each
its own address and key, nodes never in a controller's place."""

from __future__ import annotations

import base64

import pytest

from atwill.core import overlay, overlay_peers
from atwill.core.controller_urls import MAX_URLS

CIDR = "100.72.0.0/16"


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


def record(address: str, n: int, endpoint: str = "ctl.example:51820") -> dict:
    return {"public_key": key(n), "overlay_ip": address, "endpoint": endpoint,
            "overlay_url": f"https://{address}:8686"}


def test_controller_slots_are_the_first_host_then_the_highest() -> None:
    slots = overlay.controller_slots(CIDR)
    assert slots[:3] == ["100.72.0.1", "100.72.255.254", "100.72.255.253"]
    assert len(slots) == len(set(slots)) == overlay.CONTROLLER_SLOTS == MAX_URLS
    assert overlay.controller_slots("10.0.0.0/30") == ["10.0.0.1", "10.0.0.2"]
    assert overlay.controller_slots("fd00::/64")[0] == "fd00::1"


def test_nodes_are_never_given_a_controller_slot() -> None:
    assert overlay.allocate(CIDR, []) == "100.72.0.2"  # as before several controllers
    assert overlay.allocate(CIDR, ["100.72.0.2"]) == "100.72.0.3"
    small = "10.0.0.0/27"  # 30 hosts, 16 of them controller slots
    nodes: list[str] = []
    while True:
        try:
            nodes.append(overlay.allocate(small, nodes))
        except ValueError as error:
            assert "full" in str(error)
            break
    assert len(nodes) == 14 and not set(nodes) & set(overlay.controller_slots(small))


def test_a_free_controller_slot() -> None:
    assert overlay.free_controller_slot(CIDR, []) == "100.72.0.1"
    assert overlay.free_controller_slot(CIDR, ["100.72.0.1"]) == "100.72.255.254"
    assert overlay.free_controller_slot(CIDR, ["100.72.255.254"]) == "100.72.0.1"
    with pytest.raises(ValueError, match="taken"):
        overlay.free_controller_slot(CIDR, overlay.controller_slots(CIDR))


def test_every_valid_controller_is_a_peer_in_order() -> None:
    peers = overlay_peers.controller_peers(
        [record("100.72.0.1", 1), record("100.72.255.254", 2, "10.0.0.3:51820")], CIDR)
    assert [(p["overlay_ip"], p["public_key"], p["endpoint"]) for p in peers] == [
        ("100.72.0.1", key(1), "ctl.example:51820"),
        ("100.72.255.254", key(2), "10.0.0.3:51820")]
    assert overlay_peers.overlay_urls(peers) == ["https://100.72.0.1:8686",
                                                 "https://100.72.255.254:8686"]


@pytest.mark.parametrize("bad", [
    {"public_key": None}, {"public_key": "short"}, {"public_key": "A" * 43 + "!"},
    {"public_key": base64.b64encode(bytes(31)).decode() + "AAAA"},
    {"overlay_ip": "100.72.0.9"},  # not a controller slot: a node's address
    {"overlay_ip": "10.9.9.9"}, {"overlay_ip": None},
    {"endpoint": None}, {"endpoint": "no-port"}, {"endpoint": "h:0"}, {"endpoint": "h:99999"},
    {"endpoint": "h x:1"}, {"endpoint": "user@h:1"}, {"endpoint": "h/p:1"},
    {"endpoint": "fe80::1:51820"}, {"endpoint": "[nope]:1"},
    {"overlay_url": "https://100.72.0.2:8686"},  # another host than its address
    {"overlay_url": "http://100.72.0.1:8686"}, {"overlay_url": "https://100.72.0.1:8686/x"},
])
def test_a_controller_record_is_used_only_whole(bad: dict) -> None:
    assert overlay_peers.controller_peers([{**record("100.72.0.1", 1), **bad}], CIDR) == []


def test_an_ipv6_endpoint_in_brackets() -> None:
    assert overlay_peers.valid_endpoint("[fd00::3]:51820")


def test_a_repeated_address_or_key_keeps_the_first_holder() -> None:
    first, same_ip = record("100.72.0.1", 1), record("100.72.0.1", 2)
    same_key = record("100.72.255.254", 1)
    peers = overlay_peers.controller_peers([first, same_ip, same_key], CIDR)
    assert [p["public_key"] for p in peers] == [key(1)]


def test_no_node_takes_a_controllers_place() -> None:
    """A node joins with a key of its choosing: one giving a controller's key (so that
    the other nodes' WireGuard would route the controller's address to it), another
    node's key, or one holding a controller slot is left out of every peer list."""
    controllers = overlay_peers.controller_peers([record("100.72.0.1", 1)], CIDR)
    nodes = [
        {"name": "good", "public_key": key(7), "overlay_ip": "100.72.0.2"},
        {"name": "thief", "public_key": key(1), "overlay_ip": "100.72.0.3"},
        {"name": "copycat", "public_key": key(7), "overlay_ip": "100.72.0.4"},
        {"name": "squatter", "public_key": key(8), "overlay_ip": "100.72.255.254"},
        {"name": "keyless", "public_key": None, "overlay_ip": "100.72.0.5"},
    ]
    kept = overlay_peers.node_peers(nodes, controllers, CIDR)
    assert [n["name"] for n in kept] == ["good", "keyless"]


def test_the_failover_list_puts_the_overlay_first_and_stays_short() -> None:
    overlay_urls = [f"https://100.72.0.{i}:8686" for i in range(1, 4)]
    underlay = [f"https://ctl{i}.example:8686" for i in range(20)]
    listed = overlay_peers.failover_list(overlay_urls, underlay)
    assert listed[:3] == overlay_urls and len(listed) == MAX_URLS
    assert overlay_peers.failover_list([], ["https://a:1"]) == ["https://a:1"]
