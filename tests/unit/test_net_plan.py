"""Pure parts of the data plane: names, plan JSON, nftables text, dnsmasq files, FDB diffs."""

from __future__ import annotations

import json
from pathlib import Path

from atwill.agent.net import dnsmasq, layout, names, nft, nft_inet, secgroups, vxlan
from atwill.agent.net.model import (
    External,
    FixedIp,
    FloatingIp,
    HostPlan,
    Network,
    Port,
    RemotePort,
    Router,
    Rule,
    SecurityGroup,
    Subnet,
)

SUBNET = Subnet("s1", "10.0.0.0/24", 4, "10.0.0.1", dns_nameservers=("9.9.9.9",),
                host_routes=(("192.168.0.0/16", "10.0.0.9"),))
NET = Network("n1", 100, 1400, (SUBNET,),
              (RemotePort("FA:16:3E:00:00:02", ("10.0.0.6",), "192.0.2.2"),),
              ("192.0.2.2", "192.0.2.3"))
PORT = Port("p1", "n1", "fa:16:3e:00:00:01", (FixedIp("s1", "10.0.0.5"),), "tap1",
            ("sg1",), allowed_address_pairs=(("10.0.1.0/24", "fa:16:3e:00:00:99"),),
            hostname="vm1")
GROUP = SecurityGroup("sg1", (Rule("egress", "IPv4"),
                              Rule("ingress", "IPv4", remote_group_id="sg1"),
                              Rule("ingress", "IPv4", "tcp", 22, 22, "0.0.0.0/0"),
                              Rule("ingress", "IPv4", "icmp", 8, 0),
                              Rule("ingress", "IPv4", remote_group_id="missing")),
                      ("10.0.0.5", "10.0.0.6"))


def _plan(node: str = "node-1") -> HostPlan:
    router = Router("r1", (("n1", "10.0.0.0/24", "10.0.0.1"),), "203.0.113.5", "ext", True,
                    (), (FloatingIp("203.0.113.50", "10.0.0.5", "p1"),))
    return HostPlan(node, [NET], [PORT], [GROUP], [router],
                    External("ext", "203.0.113.0/24", "203.0.113.1", "extbr"),
                    {"10.0.0.5": {"meta_data": {"uuid": "u"}}}, vtep_local="192.0.2.1")


def test_plan_round_trips_through_json() -> None:
    plan = _plan()
    assert HostPlan.from_json(plan.to_json()) == plan


def test_names_are_short_unique_per_node_and_recognised() -> None:
    a, b = names.bridge_name("node-1", "n1"), names.bridge_name("node-2", "n1")
    assert a != b and len(a) <= 15 and len(names.vxlan_name("node-1", "n1")) <= 15
    assert names.ours("node-1", a) and not names.ours("node-2", a)
    assert not names.ours("node-1", "eth0")
    assert names.gateway_mac("n1") == names.gateway_mac("n1") != names.gateway_mac("n2")
    assert int(names.gateway_mac("n1").split(":")[0], 16) & 2  # locally administered


def test_table_offsets_probe_past_taken_ones() -> None:
    first = names.table_offset("router:r1", set())
    assert names.table_offset("router:r1", {first}) != first
    assert 0 < first < names.TABLE_SPAN


def test_layout_puts_routed_networks_in_the_router_domain() -> None:
    plan = _plan()
    plan.networks.append(Network("n2", 101, 1400, (Subnet("s2", "10.0.0.0/24", 4, None),)))
    built = layout.build(plan)
    assert built.networks["n1"].domain == "router:r1"
    assert built.networks["n2"].domain == "net:n2" and built.networks["n2"].addresses == ()
    assert built.networks["n1"].addresses == ("10.0.0.1/24",)
    kept = layout.build(plan, {"router:r1": 7})
    assert kept.domains["router:r1"].offset == 7


def test_fdb_has_flood_entries_per_vtep_and_one_per_remote_port() -> None:
    desired = vxlan.desired_fdb(NET)
    assert desired == {(vxlan.FLOOD, "192.0.2.2"), (vxlan.FLOOD, "192.0.2.3"),
                       ("fa:16:3e:00:00:02", "192.0.2.2")}
    add, remove = vxlan.diff({(vxlan.FLOOD, "192.0.2.9"), (vxlan.FLOOD, "192.0.2.2")}, desired)
    assert remove == {(vxlan.FLOOD, "192.0.2.9")}
    assert add == desired - {(vxlan.FLOOD, "192.0.2.2")}


def test_dnsmasq_files_and_arguments(tmp_path: Path) -> None:
    assert dnsmasq.hosts_file([PORT], NET) == "fa:16:3e:00:00:01,10.0.0.5,vm1\n"
    opts = dnsmasq.opts_file(NET)
    assert "tag:s0,option:router,10.0.0.1\n" in opts and "tag:s0,option:mtu,1400\n" in opts
    assert "option:dns-server,9.9.9.9" in opts
    assert ("option:classless-static-route,169.254.169.254/32,10.0.0.1,"
            "192.168.0.0/16,10.0.0.9,0.0.0.0/0,10.0.0.1") in opts
    args = dnsmasq.arguments(tmp_path, "br1", NET)
    assert "--dhcp-range=set:s0,10.0.0.0,static,255.255.255.0,86400s" in args
    assert {"--port=0", "--bind-interfaces", "--interface=br1", "--except-interface=lo",
            "--dhcp-authoritative"} <= set(args)
    assert all(str(tmp_path) in a for a in args if a.startswith("--pid-file"))


def test_security_group_rules_render_to_nft_json() -> None:
    groups = {"sg1": GROUP}
    tcp = secgroups.match_rule(GROUP.rules[2], set(groups))
    assert tcp == [_m(_meta("nfproto"), "ipv4"), _m(_meta("l4proto"), "tcp"),
                   _m(_pay("th", "dport"), 22),
                   _m(_pay("ip", "saddr"), {"prefix": {"addr": "0.0.0.0", "len": 0}})]
    icmp = secgroups.match_rule(GROUP.rules[3], set(groups))
    assert icmp is not None and icmp[2:] == [_m(_pay("icmp", "type"), 8),
                                             _m(_pay("icmp", "code"), 0)]
    ranged = secgroups.match_rule(Rule("egress", "IPv4", "udp", 1000, 2000), set())
    assert ranged is not None and ranged[-1] == _m(_pay("th", "dport"), {"range": [1000, 2000]})
    assert secgroups.match_rule(GROUP.rules[4], set(groups)) is None
    text = json.dumps(secgroups.port_chains(PORT, groups))
    assert f'"@{secgroups.set_name("sg1", 4)}"' in text and '{"return": null}' in text
    assert text.endswith('[{"drop": null}]}}}]')


def _m(left: object, right: object, op: str = "==") -> dict[str, object]:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> dict[str, object]:
    return {"meta": {"key": key}}


def _pay(protocol: str, field: str) -> dict[str, object]:
    return {"payload": {"protocol": protocol, "field": field}}


def test_rulesets_cover_spoofing_zones_nat_and_ports() -> None:
    plan = _plan()
    built = layout.build(plan)
    bridge = nft.render_bridge(plan, built)
    bridge_text = json.dumps(bridge.document())
    assert '["tap1", {"jump": {"target": "as_' in bridge_text
    assert '{"set": ["fa:16:3e:00:00:01", "fa:16:3e:00:00:99"]}' in bridge_text
    assert '{"set": ["10.0.0.5", {"prefix": {"addr": "10.0.1.0", "len": 24}}]}' in bridge_text
    assert '"right": "@gateways"' in bridge_text and '"value": 0' in bridge_text
    assert list(bridge.ports) == ["p1"]
    inet = nft_inet.render_inet(plan, built)
    inet_text = json.dumps(inet.document())
    name = built.networks["n1"].bridge
    assert (f'[{{"concat": ["{name}", "10.0.0.5"]}}, {{"jump": {{"target": '
            f'"in_{secgroups.short("p1")}"}}}}]') in json.dumps(inet.ports["p1"])
    assert '{"dnat": {"family": "ip", "addr": "10.0.0.5"}}' in inet_text
    assert '{"snat": {"family": "ip", "addr": "203.0.113.50"}}' in inet_text
    assert '{"masquerade": null}' in inet_text and '"dir": "original"' in inet_text
    assert '"elem": ["10.0.0.5", "10.0.0.6"]' in inet_text
    # The node's own output path meets the ports' ingress rules (issue 11, 3b).
    output = [c["add"]["rule"]["expr"] for c in inet.skeleton
              if c.get("add", {}).get("rule", {}).get("chain") == "to_ports"]
    assert {"vmap": {"key": {"concat": [_meta("oifname"), _pay("ip", "daddr")]},
                     "data": "@ingress4"}} in [e[0] for e in output]


def test_port_security_off_lifts_everything() -> None:
    plan = _plan()
    plan.ports = [Port("p1", "n1", "fa:16:3e:00:00:01", (FixedIp("s1", "10.0.0.5"),), "tap1",
                       ("sg1",), port_security=False)]
    built = layout.build(plan)
    bridge = nft.render_bridge(plan, built)
    assert bridge.ports == {} and '"elem": ["tap1"]' in json.dumps(bridge.skeleton)
    assert nft_inet.render_inet(plan, built).ports == {}
