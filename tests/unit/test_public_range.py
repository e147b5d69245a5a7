"""The all-in-one cloud's public range keeps clear of everything the host reaches."""

from __future__ import annotations

import pytest

from atwill.core import mirror_hosts, public_range
from atwill.core.public_range import HostFacts

# `ip -j route show table all` and `ip -j addr` of a host whose mirrors are in 203.0.113/24.
ROUTES = [
    {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
    {"dst": "192.0.2.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link"},
    {"type": "local", "dst": "127.0.0.0/8", "dev": "lo", "table": "local"},
    {"dst": "198.18.0.0/15", "dev": "wg0", "table": "52"},
    {"dst": "100.64.254.0/24", "dev": "atwill-ext", "scope": "link"},
]
ADDRS = [
    {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "192.0.2.2", "prefixlen": 24},
                                     {"family": "inet6", "local": "fd00::2", "prefixlen": 64}]},
]


def facts() -> HostFacts:
    return HostFacts().plus(public_range.route_entries(ROUTES, frozenset({"atwill-ext"}))) \
        .plus(public_range.address_entries(ADDRS)) \
        .plus([("10.255.255.53", "the resolver 10.255.255.53"),
               ("203.0.113.80", "deb.debian.org (203.0.113.80), a package mirror")])


def test_the_default_range_avoids_routes_resolvers_and_mirrors() -> None:
    # 198.18/15 is routed by a VPN's table; our own bridge's route does not count.
    assert str(public_range.choose(facts())) == "100.64.254.0/24"
    assert str(public_range.choose(HostFacts())) == "198.18.0.0/24"


def test_the_historic_range_is_refused_in_one_line_naming_the_mirror() -> None:
    with pytest.raises(ValueError) as error:
        public_range.check("203.0.113.0/24", facts())
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("public range 203.0.113.0/24 overlaps deb.debian.org "
                              "(203.0.113.80), a package mirror")
    assert "--public-range" in message


def test_overlaps_with_routes_addresses_and_wide_routes_are_found() -> None:
    assert public_range.conflicts("192.0.2.128/25", facts()) == [
        "the host's route 192.0.2.0/24 dev eth0", "the address 192.0.2.2/24 of eth0"]
    assert public_range.conflicts("198.19.0.0/24", facts()) == [
        "the host's route 198.18.0.0/15 dev wg0 table 52"]
    assert public_range.conflicts("10.255.255.0/24", facts()) == [
        "the resolver 10.255.255.53"]
    assert public_range.check("172.31.254.0/24", facts()).prefixlen == 24


@pytest.mark.parametrize("cidr", ["203.0.113.1/24", "fd00::/64", "10.0.0.0/30", "nonsense"])
def test_malformed_ranges_are_refused(cidr: str) -> None:
    with pytest.raises(ValueError, match="public range"):
        public_range.check(cidr, HostFacts())


def test_no_candidate_left_is_an_error() -> None:
    everything = HostFacts().plus([("0.0.0.0/1", "a"), ("128.0.0.0/1", "b")])
    with pytest.raises(ValueError, match="--public-range"):
        public_range.choose(everything)


def test_pip_hosts_from_config_files_and_environment() -> None:
    conf = "[global]\nextra-index-url = file:///opt/pypi/simple https://mirror.example/simple\n"
    assert mirror_hosts.pip_hosts([conf], {}) == {
        "mirror.example", "pypi.org", "files.pythonhosted.org"}
    env = {"PIP_INDEX_URL": "https://only.example/simple"}
    assert mirror_hosts.pip_hosts(["[bad"], env) == {"only.example"}


def test_apt_hosts_from_one_line_and_deb822_sources() -> None:
    listing = "deb [arch=amd64] https://packages.example/apt stable main\n# deb http://x/ a\n"
    deb822 = "Types: deb\nURIs: http://deb.debian.org/debian http://mirror.example/d\n"
    assert mirror_hosts.apt_hosts([listing, deb822]) == {
        "packages.example", "deb.debian.org", "mirror.example"}
    assert mirror_hosts.proxy_hosts({"https_proxy": "http://proxy.example:3128"}) == {
        "proxy.example"}
