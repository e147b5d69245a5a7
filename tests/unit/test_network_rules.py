"""core/netrules.py, core/netquery.py and core/netquota.py."""

from __future__ import annotations

import pytest

from atwill.core import netquery, netquota, netrules


def rule(**change: object) -> dict:
    return {"direction": "ingress", "ethertype": "IPv4", **change}


@pytest.mark.parametrize("data,message", [
    (rule(direction="in"), "direction"),
    (rule(ethertype="IPv5"), "ethertype"),
    (rule(protocol="bogus"), "not supported"),
    (rule(protocol="256"), "not supported"),
    (rule(protocol="tcp", port_range_min=0, port_range_max=10), r"not in \[1"),
    (rule(protocol="tcp", port_range_min=80, port_range_max=22), "<="),
    (rule(protocol="tcp", port_range_min=1, port_range_max=70000), r"not in \[1"),
    (rule(protocol="tcp", port_range_min="x"), "not an integer"),
    (rule(protocol="gre", port_range_min=1, port_range_max=2), "only supported"),
    (rule(port_range_min=1, port_range_max=2), "only supported"),
    (rule(protocol="icmp", port_range_max=0), "type"),
    (rule(protocol="icmp", port_range_min=256), "ICMP type"),
    (rule(remote_ip_prefix="::/0"), "Conflicting value ethertype IPv4"),
    (rule(ethertype="IPv6", remote_ip_prefix="10.0.0.0/8"), "Conflicting"),
    (rule(remote_ip_prefix="10.0.0.0/40"), "not a valid"),
    (rule(remote_ip_prefix="10.0.0.0/8", remote_group_id="g"), "Only"),
    (rule(protocol="ipv6-icmp"), "only valid with ethertype IPv6"),
])
def test_bad_rules(data: dict, message: str) -> None:
    with pytest.raises(netrules.InvalidRule, match=message):
        netrules.check_rule(data)


def test_rules_are_normalised() -> None:
    out = netrules.check_rule(rule(protocol="TCP", port_range_min="22", port_range_max=22,
                                   remote_ip_prefix="10.1.2.3/8"))
    assert out["protocol"] == "tcp" and out["port_range_min"] == out["port_range_max"] == 22
    assert out["remote_ip_prefix"] == "10.0.0.0/8"
    icmp = netrules.check_rule(rule(protocol="icmp", port_range_min=8, port_range_max=0))
    assert (icmp["port_range_min"], icmp["port_range_max"]) == (8, 0)
    assert netrules.check_rule(rule(ethertype=None))["ethertype"] == "IPv4"


def test_duplicates_compare_protocol_numbers_and_any_prefix() -> None:
    a = netrules.check_rule(rule(protocol="tcp", port_range_min=22, port_range_max=22))
    b = netrules.check_rule(rule(protocol="6", port_range_min=22, port_range_max=22,
                                 remote_ip_prefix="0.0.0.0/0"))
    assert netrules.same_rule(a, b)
    assert not netrules.same_rule(a, {**b, "direction": "egress"})


def test_default_rules() -> None:
    rules = netrules.default_rules("g1")
    assert len(rules) == 4
    assert {(r["direction"], r["ethertype"], r["remote_group_id"]) for r in rules} == {
        ("egress", "IPv4", None), ("egress", "IPv6", None),
        ("ingress", "IPv4", "g1"), ("ingress", "IPv6", "g1")}


ITEMS = [{"id": "a", "name": "x", "shared": True, "mtu": 1370, "tags": ["red"],
          "fixed_ips": [{"ip_address": "10.0.0.2", "subnet_id": "s"}], "device_id": None},
         {"id": "b", "name": "y", "shared": False, "mtu": 1500, "tags": ["red", "blue"],
          "fixed_ips": [], "device_id": "r"}]


@pytest.mark.parametrize("params,ids", [
    ({"name": ["x"]}, ["a"]), ({"name": ["x", "y"]}, ["a", "b"]),
    ({"shared": ["True"]}, ["a"]), ({"mtu": ["1500"]}, ["b"]),
    ({"fixed_ips": ["ip_address=10.0.0.2"]}, ["a"]), ({"device_id": [""]}, ["a"]),
    ({"tags": ["red,blue"]}, ["b"]), ({"tags-any": ["blue"]}, ["b"]),
    ({"not-tags": ["blue"]}, ["a"]), ({"not-tags-any": ["red"]}, []),
    ({"unknown": ["z"], "fields": ["id"]}, ["a", "b"]),
])
def test_filters(params: dict, ids: list[str]) -> None:
    assert [i["id"] for i in netquery.filtered(ITEMS, params)] == ids


def test_sorting_and_fields() -> None:
    assert [i["id"] for i in netquery.sorted_items(ITEMS, ["mtu"], ["desc"])] == ["b", "a"]
    assert netquery.selected(ITEMS[0], ["id", "name"]) == {"id": "a", "name": "x"}
    for keys, dirs in ((["bogus"], []), (["mtu"], ["up"]), (["mtu"], ["asc", "desc"])):
        with pytest.raises(netquery.InvalidQuery):
            netquery.sorted_items(ITEMS, keys, dirs)
    with pytest.raises(netquery.InvalidQuery):
        netquery.filtered(ITEMS, {"shared": ["maybe"]})


def test_quota_limits() -> None:
    assert netquota.validate_limit("network", "5") == 5
    assert netquota.validate_limit("port", -1) == -1
    for resource, value in (("network", -2), ("network", True), ("bogus", 1),
                            ("network", "x")):
        with pytest.raises(ValueError):
            netquota.validate_limit(resource, value)
    assert netquota.over(1, 1) and not netquota.over(-1, 10**6)
