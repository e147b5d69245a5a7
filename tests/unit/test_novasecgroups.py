"""Nova's conversion of Neutron security groups for os-security-groups."""

from __future__ import annotations

from atwill.core.novasecgroups import nova_group, nova_rule


def _rule(**kw: object) -> dict:
    base = {"id": "r1", "security_group_id": "g1", "direction": "ingress",
            "protocol": None, "port_range_min": None, "port_range_max": None,
            "remote_ip_prefix": None, "remote_group_id": None}
    return {**base, **kw}


def test_tcp_without_ports_is_every_port_and_any_address() -> None:
    out = nova_rule(_rule(protocol="tcp"), None)
    assert (out["from_port"], out["to_port"]) == (1, 65535)
    assert out["ip_range"] == {"cidr": "0.0.0.0/0"} and out["group"] == {}


def test_icmp_without_ports_is_minus_one_and_ports_pass_through() -> None:
    assert (nova_rule(_rule(protocol="icmp"), None)["from_port"]) == -1
    out = nova_rule(_rule(protocol="tcp", port_range_min=22, port_range_max=22,
                          remote_ip_prefix="10.0.0.0/8"), None)
    assert (out["from_port"], out["to_port"], out["ip_range"]) == (22, 22,
                                                                   {"cidr": "10.0.0.0/8"})


def test_remote_group_rule_names_the_group() -> None:
    out = nova_rule(_rule(remote_group_id="g2"), {"name": "web", "tenant_id": "p"})
    assert out["group"] == {"name": "web", "tenant_id": "p"} and out["ip_range"] == {}
    assert out["ip_protocol"] is None and out["from_port"] is None


def test_group_keeps_only_ingress_rules() -> None:
    group = {"id": "g1", "name": "default", "project_id": "p", "description": None,
             "security_group_rules": [_rule(), _rule(id="r2", direction="egress")]}
    out = nova_group(group, {})
    assert set(out) == {"id", "name", "tenant_id", "description", "rules"}
    assert [r["id"] for r in out["rules"]] == ["r1"] and out["description"] == ""
