"""core/addresses.py: strict addresses, prefixes and MACs for tenant input."""

from __future__ import annotations

import ipaddress

import pytest

from atwill.core import addresses, ipam
from atwill.core.errors import BadRequest

INJECT = "fe80::1%x\n}\nflush ruleset"


@pytest.mark.parametrize("value", [
    INJECT, "fe80::1%eth0", "fe80::1%1", "10.0.0.1\n", " 10.0.0.1", "10.0.0.1 ", "10.0.0.1/32",
    "10.0.0.01", "1.2.3", "", "x" * 100, "::ffff:10.0.0.1%x", 5, None, b"10.0.0.1", ["10.0.0.1"],
])
def test_ip_refuses(value: object) -> None:
    with pytest.raises(addresses.InvalidAddress):
        addresses.ip(value)


def test_ip_accepts_plain_forms() -> None:
    assert addresses.ip("10.0.0.1") == ipaddress.ip_address("10.0.0.1")
    assert str(addresses.ip("FD00:0:0:0:0:0:0:1")) == "fd00::1"
    assert str(addresses.ip("::ffff:10.0.0.1")) == "::ffff:a00:1"
    with pytest.raises(addresses.InvalidAddress, match="not an IPv4"):
        addresses.ip("fd00::1", version=4)


@pytest.mark.parametrize("value", [
    INJECT, "fe80::%eth0/64", "fd00::%x\n}/64", "10.0.0.0/24\n", "10.0.0.0 /24",
    "10.0.0.0/ 24", "10.0.0.0/+24", "10.0.0.0/２４", "10.0.0.0/33", "", 24, None,
])
def test_prefix_refuses(value: object) -> None:
    with pytest.raises(addresses.InvalidAddress):
        addresses.prefix(value)


def test_prefix_forms() -> None:
    assert str(addresses.prefix("10.0.0.7")) == "10.0.0.7/32"
    assert str(addresses.prefix("10.0.0.7/24")) == "10.0.0.0/24"
    with pytest.raises(addresses.InvalidAddress):
        addresses.prefix("10.0.0.7", need_length=True)
    with pytest.raises(addresses.InvalidAddress):
        addresses.prefix("10.0.0.7/24", strict=True)


def test_field_errors_are_short_400s() -> None:
    with pytest.raises(BadRequest) as caught:
        addresses.ip_field("1" * 5000, "fixed_ips")
    assert "fixed_ips" in str(caught.value.message) and len(caught.value.message) < 200


@pytest.mark.parametrize("value", ["fa:16:3e:00:00:01\n", " fa:16:3e:00:00:01",
                                   "fa:16:3e:00:00:01%x", "01:16:3e:00:00:01",
                                   "00:00:00:00:00:00", "fa:16:3e:00:00", 5])
def test_mac_refuses(value: object) -> None:
    with pytest.raises(addresses.InvalidAddress):
        addresses.mac(value)


def test_mac_normalised() -> None:
    assert addresses.mac("FA-16-3E-00-00-01") == "fa:16:3e:00:00:01"


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0", "fe80::%x/64", "10.0.0.0/24\n"])
def test_subnet_cidrs_refused(cidr: str) -> None:
    with pytest.raises(ipam.InvalidSubnet):
        ipam.parse_cidr(cidr)


def test_fixed_ip_keeps_no_scope() -> None:
    net = ipam.parse_cidr("fe80::/64")
    with pytest.raises(ipam.InvalidSubnet):
        ipam.check_fixed_ip(net, "fe80::5%eth0", None)
    assert str(ipam.check_fixed_ip(net, "fe80::5", None)) == "fe80::5"
