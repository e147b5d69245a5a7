"""Subnet pool arithmetic (core.subnetpools)."""

from __future__ import annotations

import ipaddress

import pytest

from atwill.core import subnetpools as sp


def nets(*texts: str) -> list[sp.Net]:
    return [ipaddress.ip_network(t) for t in texts]


def test_prefixes_are_merged_and_of_one_family() -> None:
    assert sp.as_text(sp.parse_prefixes(["10.0.1.0/24", "10.0.0.0/24", "10.0.0.7/24"])) == [
        "10.0.0.0/23"]
    with pytest.raises(sp.InvalidPool, match="mix"):
        sp.parse_prefixes(["10.0.0.0/24", "fd00::/64"])
    with pytest.raises(sp.InvalidPool, match="mix"):
        sp.parse_prefixes(["10.0.0.0/24"], 6)
    for bad in ([], "10.0.0.0/8", ["10.0.0.0"], ["nonsense/8"], [7]):
        with pytest.raises(sp.InvalidPool):
            sp.parse_prefixes(bad)


def test_bounds_defaults_order_and_update_direction() -> None:
    assert sp.bounds({}, 4) == {"min_prefixlen": 8, "max_prefixlen": 32, "default_prefixlen": 8}
    assert sp.bounds({"default_prefixlen": "24"}, 4)["default_prefixlen"] == 24
    assert sp.bounds({}, 6) == {"min_prefixlen": 64, "max_prefixlen": 128,
                                "default_prefixlen": 64}
    with pytest.raises(sp.InvalidPool, match="Illegal prefix bounds"):
        sp.bounds({"min_prefixlen": 24, "default_prefixlen": 16}, 4)
    with pytest.raises(sp.InvalidPool):
        sp.bounds({"max_prefixlen": 33}, 4)
    with pytest.raises(sp.InvalidPool):
        sp.bounds({"min_prefixlen": True}, 4)
    current = {"min_prefixlen": 16, "max_prefixlen": 28, "default_prefixlen": 24}
    assert sp.bounds({"min_prefixlen": 12}, 4, current)["min_prefixlen"] == 12
    assert sp.bounds({"default_prefixlen": 26}, 4, current) == {
        "min_prefixlen": 16, "max_prefixlen": 28, "default_prefixlen": 26}
    with pytest.raises(sp.InvalidPool, match="only be"):
        sp.bounds({"min_prefixlen": 20}, 4, current)
    with pytest.raises(sp.InvalidPool, match="only be"):
        sp.bounds({"max_prefixlen": 26}, 4, current)


def test_allocate_takes_the_first_free_prefix_around_used_ones() -> None:
    pool = nets("10.10.0.0/16")
    assert str(sp.allocate(pool, [], 24)) == "10.10.0.0/24"
    assert str(sp.allocate(pool, nets("10.10.0.0/24"), 24)) == "10.10.1.0/24"
    # A smaller used subnet still blocks the /24 around it; a larger one skips past it.
    assert str(sp.allocate(pool, nets("10.10.0.128/25"), 24)) == "10.10.1.0/24"
    assert str(sp.allocate(pool, nets("10.10.0.0/20"), 24)) == "10.10.16.0/24"
    assert str(sp.allocate(pool, nets("10.10.1.0/24"), 24)) == "10.10.0.0/24"
    assert str(sp.allocate(nets("10.0.0.0/24", "10.1.0.0/24"), nets("10.0.0.0/25"), 24)) \
        == "10.1.0.0/24"
    with pytest.raises(sp.PoolExhausted, match="/24"):
        sp.allocate(nets("10.0.0.0/24"), nets("10.0.0.0/26"), 24)
    with pytest.raises(sp.PoolExhausted):
        sp.allocate(nets("10.0.0.0/24"), [], 16)
    assert str(sp.allocate(nets("fd00::/56"), nets("fd00::/64"), 64)) == "fd00:0:0:1::/64"
    top = nets("255.255.255.0/24")
    with pytest.raises(sp.PoolExhausted):
        sp.allocate(top, top, 28)


def test_requests_removal_and_quota_units() -> None:
    pool = nets("10.10.0.0/16")
    limits = {"min_prefixlen": 16, "max_prefixlen": 28}
    sp.check_request(ipaddress.ip_network("10.10.5.0/24"), pool, limits)
    with pytest.raises(sp.InvalidPool, match="not within"):
        sp.check_request(ipaddress.ip_network("10.11.0.0/24"), pool, limits)
    with pytest.raises(sp.InvalidPool, match="outside"):
        sp.check_request(ipaddress.ip_network("10.10.0.0/30"), pool, limits)
    assert sp.as_text(sp.without(pool, nets("10.10.128.0/17"))) == ["10.10.0.0/17"]
    assert sp.without(pool, nets("10.0.0.0/8")) == []
    assert sp.as_text(sp.without(pool, nets("192.168.0.0/16"))) == ["10.10.0.0/16"]
    sp.removable(nets("10.10.128.0/17"), nets("10.10.0.0/24"))
    with pytest.raises(sp.InvalidPool, match="in use"):
        sp.removable(nets("10.10.0.0/17"), nets("10.10.0.0/24"))
    assert sp.quota_units(ipaddress.ip_network("10.0.0.0/24")) == 256
    assert sp.quota_units(ipaddress.ip_network("fd00::/56")) == 256
