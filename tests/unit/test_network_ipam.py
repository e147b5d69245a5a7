"""core/ipam.py and core/l2.py: CIDRs, gateways, pools, lowest free address, MACs, MTU."""

from __future__ import annotations

import ipaddress

import pytest

from atwill.core import ipam, l2


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize("cidr", ["10.0.0.1/24", "10.0.0.0", "nonsense/24", "10.0.0.0/33",
                                  "10.0.0.0/31", "2001:db8::1/64", None, 42])
def test_bad_cidrs_are_refused(cidr: object) -> None:
    with pytest.raises(ipam.InvalidSubnet):
        ipam.parse_cidr(cidr)


def test_family_must_match_ip_version() -> None:
    with pytest.raises(ipam.InvalidSubnet, match="not an IPv6"):
        ipam.parse_cidr("10.0.0.0/24", 6)
    assert str(ipam.parse_cidr("2001:db8::/64", 6)) == "2001:db8::/64"


def test_default_pools_skip_gateway_network_and_broadcast() -> None:
    net = ipam.parse_cidr("192.168.2.0/23")
    pools = ipam.default_pools(net, ipam.first_host(net))
    assert ipam.pools_api(pools) == [{"start": "192.168.2.2", "end": "192.168.3.254"}]
    middle = ipam.default_pools(net, ip("192.168.2.100"))
    assert ipam.pools_api(middle) == [{"start": "192.168.2.1", "end": "192.168.2.99"},
                                      {"start": "192.168.2.101", "end": "192.168.3.254"}]
    assert ipam.pools_api(ipam.default_pools(net, None))[0]["start"] == "192.168.2.1"


def test_ipv6_keeps_the_last_address() -> None:
    net = ipam.parse_cidr("2001:db8::/120")
    assert ipam.last_host(net) == ip("2001:db8::ff")


@pytest.mark.parametrize("pools,message", [
    ([{"start": "10.0.1.1", "end": "10.0.1.5"}], "spans beyond"),
    ([{"start": "10.0.0.0", "end": "10.0.0.5"}], "spans beyond"),
    ([{"start": "10.0.0.2", "end": "10.0.0.255"}], "spans beyond"),
    ([{"start": "10.0.0.9", "end": "10.0.0.5"}], "Invalid allocation pool"),
    ([{"start": "10.0.0.1", "end": "10.0.0.5"}], "conflicts"),
    ([{"start": "10.0.0.2", "end": "10.0.0.9"}, {"start": "10.0.0.9", "end": "10.0.0.20"}],
     "overlapping"),
    ([{"start": "10.0.0.2"}], "exactly"),
    ("10.0.0.2-10.0.0.9", "list"),
])
def test_bad_pools(pools: object, message: str) -> None:
    net = ipam.parse_cidr("10.0.0.0/24")
    with pytest.raises(ipam.InvalidSubnet, match=message):
        ipam.parse_pools(net, pools, ip("10.0.0.1"))


def test_gateway_must_be_a_host_of_the_subnet() -> None:
    net = ipam.parse_cidr("10.0.0.0/24")
    for bad in ("10.0.1.1", "10.0.0.0", "10.0.0.255", "x"):
        with pytest.raises(ipam.InvalidSubnet):
            ipam.check_gateway(net, bad)
    assert ipam.check_gateway(net, "10.0.0.254") == ip("10.0.0.254")


def test_lowest_free_skips_used_and_walks_pools_in_order() -> None:
    pools = [(ip("10.0.0.20"), ip("10.0.0.21")), (ip("10.0.0.2"), ip("10.0.0.3"))]
    assert ipam.lowest_free(pools, []) == ip("10.0.0.2")
    assert ipam.lowest_free(pools, ["10.0.0.2", "10.0.0.3"]) == ip("10.0.0.20")
    assert ipam.lowest_free(pools, ["10.0.0.2", "10.0.0.3", "10.0.0.20", "10.0.0.21"]) is None


def test_lowest_free_is_fast_on_huge_pools() -> None:
    net = ipam.parse_cidr("2001:db8::/64")
    used = [str(net.network_address + i) for i in range(1, 500)]
    assert ipam.lowest_free(ipam.default_pools(net, None), used) == net.network_address + 500


def test_overlapping() -> None:
    net = ipam.parse_cidr("10.0.0.0/23")
    assert ipam.overlapping(net, ["10.0.1.0/24"]) == "10.0.1.0/24"
    assert ipam.overlapping(net, ["10.0.2.0/24", "2001:db8::/64"]) is None


def test_fixed_ip_checks() -> None:
    net = ipam.parse_cidr("10.0.0.0/24")
    assert ipam.check_fixed_ip(net, "10.0.0.5", "10.0.0.1") == ip("10.0.0.5")
    assert ipam.check_fixed_ip(net, "10.0.0.1", "10.0.0.1", router_port=True)
    for bad in ("10.0.0.1", "10.0.0.0", "10.0.0.255", "10.0.1.5", "nope"):
        with pytest.raises(ipam.InvalidSubnet):
            ipam.check_fixed_ip(net, bad, "10.0.0.1")


def test_macs() -> None:
    mac = l2.random_mac()
    assert mac.startswith("fa:16:3e:") and l2.normalize_mac(mac) == mac
    assert l2.normalize_mac("FA-16-3E-00-00-01") == "fa:16:3e:00:00:01"
    for bad in ("01:00:5e:00:00:01", "00:00:00:00:00:00", "fa:16:3e:00:00", 5):
        with pytest.raises(ValueError):
            l2.normalize_mac(bad)


def test_mtu_and_vni() -> None:
    assert l2.tenant_mtu() == 1370
    assert l2.tenant_mtu(9000) == 8870
    assert l2.tenant_mtu(1500, "flat") == 1500
    assert l2.lowest_free_vni([1001, 1002, 1004]) == 1003
    assert l2.lowest_free_vni([5], low=5, high=5) is None
