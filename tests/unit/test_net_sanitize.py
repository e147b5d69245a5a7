"""The agent's own checks on desired-state values (issue 11, item 2): bad values never reach
nftables or dnsmasq, and drop only what carries them."""

from __future__ import annotations

import dataclasses
import json

import pytest

from atwill.agent.net import dnsmasq, layout, nft, nft_inet, sanitize
from atwill.agent.net.model import FixedIp, HostPlan, Network, Port, Rule, SecurityGroup, Subnet

INJECTION = "fe80::1%x\n}\nflush ruleset"
BAD_ADDRESSES = [INJECTION, "fe80::1%eth0", "10.0.0.1\n", " 10.0.0.1", "10.0.0.1 ", "10.0.0.256",
                 "10.0.0", "1.2.3.4/33", "1.2.3.4/", "1.2.3.4/a", "::1/129", "10.0.0.1}",
                 "10.0.0.1; drop", "", "x", "10.0.0.1,10.0.0.2", '"10.0.0.1"', "0x0a000001",
                 "10.0.0.1/24/24", "fe80::1%", "\u0661.1.1.1", 5, None, ["10.0.0.1"]]


@pytest.mark.parametrize("value", BAD_ADDRESSES)
def test_bad_addresses_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        sanitize.ip(value)
    if value not in ("1.2.3.4/33",):
        with pytest.raises(ValueError):
            sanitize.prefix(value if value != "10.0.0" else "10.0.0/8")


def test_good_values_are_canonical() -> None:
    assert sanitize.ip("2001:DB8::1") == "2001:db8::1"
    assert sanitize.prefix("10.0.1.7/24") == "10.0.1.0/24"
    assert sanitize.prefix("10.0.0.5") == "10.0.0.5/32"
    assert sanitize.mac("FA:16:3E:00:00:01") == "fa:16:3e:00:00:01"
    for bad in ("fa:16:3e:00:00", "fa:16:3e:00:00:01\n", "fa-16-3e-00-00-01", "zz:16:3e:00:00:01"):
        with pytest.raises(ValueError):
            sanitize.mac(bad)


SUBNET = Subnet("s1", "10.0.0.0/24", 4, "10.0.0.1",
                dns_nameservers=("9.9.9.9", INJECTION, "8.8.8.8\ndhcp-option=6,6.6.6.6"),
                host_routes=(("192.168.0.0/16", "10.0.0.9"), (INJECTION, "10.0.0.9"),
                             ("172.16.0.0/12", "10.0.0.9\n")))
NET = Network("n1", 100, 1400, (SUBNET,))
GOOD = Port("p1", "n1", "fa:16:3e:00:00:01", (FixedIp("s1", "10.0.0.5"),), "tap1", ("sg1",),
            allowed_address_pairs=((INJECTION, None), ("10.0.1.0/24", None)), hostname="vm1")
BAD_MAC = Port("p2", "n1", "fa:16:3e:00:00:02\n}", (FixedIp("s1", "10.0.0.6"),), "tap2",
               ("sg1",), hostname="a,b\nc")
BAD_IP = Port("p3", "n1", "fa:16:3e:00:00:03", (FixedIp("s1", INJECTION),), "tap3", ("sg1",),
              hostname="x\n0.0.0.0,evil")
GROUP = SecurityGroup("sg1", (Rule("ingress", "IPv4", "tcp", 22, 22, "0.0.0.0/0"),
                              Rule("ingress", "IPv6", remote_ip_prefix=INJECTION),
                              Rule("ingress", "IPv4", "tcp\n}", 22, 22),
                              Rule("ingress", "IPv4", "tcp", 2000, 1000),
                              Rule("ingress", "IPv4", "300"),
                              Rule("ingress", "IPv4", remote_ip_prefix="2001:db8::/32")),
                      ("10.0.0.5", INJECTION))


def _plan() -> HostPlan:
    return HostPlan("node-1", [NET], [GOOD, BAD_MAC, BAD_IP], [GROUP],
                    metadata={"10.0.0.5": {"port_id": "p1"}, INJECTION: {}})


def test_a_plan_loses_only_the_bad_values() -> None:
    cleaned, problems = sanitize.clean(_plan())
    ports = {p.id: p for p in cleaned.ports}
    assert set(ports) == {"p1", "p3"}  # p2's MAC is bad: the port goes (reported)
    assert ports["p1"].allowed_address_pairs == (("10.0.1.0/24", None),)
    assert ports["p3"].fixed_ips == ()
    assert cleaned.security_groups[0].rules == (GROUP.rules[0],)
    assert cleaned.security_groups[0].member_ips == ("10.0.0.5",)
    subnet = cleaned.networks[0].subnets[0]
    assert subnet.dns_nameservers == ("9.9.9.9",)
    assert subnet.host_routes == (("192.168.0.0/16", "10.0.0.9"),)
    assert list(cleaned.metadata) == ["10.0.0.5"]
    assert len(problems) == 14 and all("\n" not in p[:40] for p in problems)


def test_no_injection_reaches_the_rulesets_or_dnsmasq_files() -> None:
    cleaned, _ = sanitize.clean(_plan())
    built = layout.build(cleaned)
    documents = [nft.render_bridge(cleaned, built).document(),
                 nft_inet.render_inet(cleaned, built).document()]
    text = json.dumps(documents)
    assert "flush" not in text and "%" not in text and "\\n" not in text
    # Every rule is a JSON object: no string is ever parsed as ruleset syntax.
    for document in documents:
        for command in document["nftables"]:
            assert set(command) <= {"add", "delete"}


def test_dnsmasq_files_skip_unchecked_values_even_without_the_plan_check() -> None:
    skipped: list[str] = []
    opts = dnsmasq.opts_file(NET, skipped)
    hosts = dnsmasq.hosts_file([GOOD, BAD_MAC, BAD_IP], NET, skipped)
    assert "6.6.6.6" not in opts and "flush" not in opts and "%" not in opts
    assert "option:dns-server,9.9.9.9\n" in opts
    assert "192.168.0.0/16,10.0.0.9" in opts and "172.16.0.0/12" not in opts
    assert hosts == "fa:16:3e:00:00:01,10.0.0.5,vm1\n"
    assert len(skipped) == 6
    odd = dataclasses.replace(GOOD, hostname="a,b\nc")
    assert dnsmasq.hosts_file([odd], NET) == "fa:16:3e:00:00:01,10.0.0.5,host-10-0-0-5\n"
