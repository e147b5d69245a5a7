"""The `inet atwill` table as nft JSON: zones, marks, NAT and the security groups.

Security groups hold on every path into a port: the forward hook (from outside, from other
ports on this node, from other nodes over VXLAN: br_netfilter shows bridged IP there) and
the postrouting hook (the node's own connections, including those DNATed from a floating
IP; the output hook still sees their first route, to lo).
"""

from __future__ import annotations

from typing import Any

from atwill.agent.net import secgroups
from atwill.agent.net.layout import Layout
from atwill.agent.net.model import HostPlan
from atwill.agent.net.names import METADATA_IP
from atwill.agent.net.nft import Ruleset, port_addresses
from atwill.agent.net.nftexpr import (
    ACCEPT,
    DROP,
    Expr,
    address,
    anon,
    base_chain,
    concat,
    ct,
    declare,
    declare_map,
    elements,
    jump,
    mangle,
    match,
    meta,
    payload,
    replace_table,
    rule,
)

IIF, OIF = meta("iifname"), meta("oifname")
FAMILY = "inet"


def _zones(layout: Layout) -> tuple[list[list[Expr]], list[list[Expr]]]:
    # Inside a domain (its subnets, broadcast, the node's own services) both directions share
    # its zone; towards the outside only the original direction does, so NATed replies (which
    # arrive with no zone) still find their entry. Local answers (DHCP, metadata) get the zone
    # of the bridge they leave by, or two networks' identical DHCP replies would clash.
    pre, out = [], []
    for domain in layout.domains.values():
        bridges = anon(sorted(domain.bridges))
        inside = sorted({c for c, _ in domain.cidrs if ":" not in c}
                        | {"255.255.255.255", METADATA_IP})
        pre.append([match(IIF, bridges), match(payload("ip", "daddr"),
                                               anon([address(a) for a in inside])),
                    mangle(ct("zone"), domain.offset), ACCEPT])
        pre.append([match(IIF, bridges), mangle(ct("zone", "original"), domain.offset)])
        out.append([match(OIF, bridges), mangle(ct("zone"), domain.offset)])
    return pre, out


def _floating(layout: Layout) -> list[tuple[str, str, int]]:
    """(floating ip, fixed ip, mark) for every floating IP of a local router."""
    return [(f.floating_ip, f.fixed_ip, d.mark) for d in layout.domains.values()
            if d.router is not None for f in d.router.floating_ips]


def _nat(plan: HostPlan, layout: Layout) -> tuple[list[list[Expr]], list[list[Expr]]]:
    pre: list[list[Expr]] = []
    post: list[list[Expr]] = []
    ext = plan.external
    daddr, saddr, mark = payload("ip", "daddr"), payload("ip", "saddr"), meta("mark")
    for domain in layout.domains.values():
        router = domain.router
        if router is None or ext is None or router.external_network_id is None:
            continue
        for fip in router.floating_ips:
            pre.append([match(IIF, "@bridges", "!="), match(daddr, fip.floating_ip),
                        {"dnat": {"family": "ip", "addr": fip.fixed_ip}}])
            post.append([match(OIF, ext.bridge), match(mark, domain.mark),
                         match(saddr, fip.fixed_ip),
                         {"snat": {"family": "ip", "addr": fip.floating_ip}}])
        if ext.nat_to_host and (router.enable_snat or router.floating_ips):
            # One NAT per flow: towards the host's routes, floating IPs cannot be kept.
            post.append([match(OIF, "@bridges", "!="), match(mark, domain.mark),
                         {"masquerade": None}])
        elif router.enable_snat:
            post.append([match(OIF, ext.bridge), match(mark, domain.mark),
                         {"masquerade": None}])
    return pre, post


def _local_floating(plan: HostPlan, layout: Layout) -> tuple[list[list[Expr]], list[list[Expr]]]:
    """The host's own connections to floating IPs (which are local addresses on the
    external bridge): DNAT in output, after a mark that routes them in the domain."""
    if plan.external is None:
        return [], []
    fips = _floating(layout)
    route = [[match(payload("ip", "daddr"), f), mangle(meta("mark"), m)] for f, _, m in fips]
    nat = [[match(payload("ip", "daddr"), f), {"dnat": {"family": "ip", "addr": x}}]
           for f, x, _ in fips]
    return route, nat


def _port_pieces(plan: HostPlan, layout: Layout, s: Ruleset) -> dict[str, list[Expr]]:
    """Each secured port's chains and map entries; its addresses for the skeleton's sets."""
    groups = {g.id: g for g in plan.security_groups}
    known: dict[str, list[Expr]] = {"4": [], "6": []}
    for port, net in layout.ports:
        if not port.port_security:
            continue
        commands = secgroups.port_chains(port, groups)
        v4, v6 = port_addresses(port)
        for version, ips in (("4", v4), ("6", v6)):
            keys = [concat(net.bridge, ip) for ip in ips if "/" not in ip]
            known[version] += keys
            for direction in ("egress", "ingress"):
                chain = secgroups.chain_name(port, direction)
                if keys:
                    commands.append(elements(FAMILY, f"{direction}{version}",
                                             [[k, jump(chain)] for k in keys]))
            if keys:
                commands.append(elements(FAMILY, f"admitted{version}", keys))
        s.ports[port.id] = commands
    return known


def _forward() -> list[list[Expr]]:
    both = concat(IIF, OIF)
    return [[match(IIF, "@bridges", "!="), match(OIF, "@bridges", "!="), ACCEPT],
            [match(ct("state"), ["established", "related"], "in"), ACCEPT],
            [match(ct("state"), "invalid", "in"), DROP],
            [match(IIF, "@bridges"), match(OIF, "@bridges"), match(both, "@pairs", "!="), DROP],
            # Leaving for a non-bridge: only paired (the external bridge), or by the host's
            # routes from a domain whose router has a gateway (nat_to_host).
            [match(IIF, "@bridges"), match(OIF, "@bridges", "!="),
             match(IIF, "@outbound", "!="), match(both, "@pairs", "!="), DROP],
            [match(OIF, "@bridges"), match(IIF, "@bridges", "!="),
             match({"&": [ct("status"), "dnat"]}, "dnat", "!="), DROP],
            *_port_maps(egress=True), *_port_maps(egress=False)]


def _port_maps(egress: bool) -> list[list[Expr]]:
    """Jump to the port's chain; a secured local port without one (refused) is dropped."""
    dev, side, name = (IIF, "saddr", "egress") if egress else (OIF, "daddr", "ingress")
    lines = []
    for version, family in (("4", "ip"), ("6", "ip6")):
        key = concat(dev, payload(family, side))
        lines += [[match(key, f"@ports{version}"), match(key, f"@admitted{version}", "!="),
                   DROP],
                  [{"vmap": {"key": key, "data": f"@{name}{version}"}}]]
    return lines


def _output() -> list[list[Expr]]:
    # The node's own traffic into a port meets the port's ingress rules, like any other;
    # the node's answers (DHCP, metadata, ICMP errors) and neighbour discovery pass.
    return [[match(OIF, "@bridges", "!="), ACCEPT],
            [match(ct("state"), ["established", "related"], "in"), ACCEPT],
            [match(meta("l4proto"), "udp"), match(payload("udp", "sport"), 67), ACCEPT],
            [match(meta("l4proto"), "ipv6-icmp"),
             match(payload("icmpv6", "type"), anon(["nd-neighbor-solicit",
                                                    "nd-neighbor-advert",
                                                    "nd-router-advert"])), ACCEPT],
            *_port_maps(egress=False)]


def _mangle(plan: HostPlan, layout: Layout) -> list[list[Expr]]:
    marks = [[b, d.mark] for d in layout.domains.values() for b in d.bridges]
    fips = [[f, m] for f, _, m in _floating(layout)]
    lines: list[list[Expr]] = []
    mark = meta("mark")
    if marks:
        lines.append([match(IIF, "@bridges"),
                      mangle(mark, {"map": {"key": IIF, "data": {"set": marks}}}),
                      mangle(ct("mark"), mark), ACCEPT])
    lines.append([match(ct("mark"), {"prefix": {"addr": 0x41570000, "len": 16}}),
                  mangle(mark, ct("mark")), ACCEPT])
    if fips:
        daddr = payload("ip", "daddr")
        lines.append([match(daddr, "@floating"),
                      mangle(mark, {"map": {"key": daddr, "data": {"set": fips}}}),
                      mangle(ct("mark"), mark)])
    return lines


def _sets(plan: HostPlan, layout: Layout, known: dict[str, list[Expr]]) -> list[Any]:
    ext = plan.external
    pairs = [concat(a, b) for d in layout.domains.values() for a in d.bridges
             for b in d.bridges]
    routed = [d for d in layout.domains.values() if d.router and d.router.external_network_id]
    if ext is not None:
        pairs += [concat(b, ext.bridge) for d in routed for b in d.bridges]
    outbound = sorted(b for d in routed if ext is not None and ext.nat_to_host
                      for b in d.bridges)
    groups = {g.id: g for g in plan.security_groups}
    return [*secgroups.group_sets(groups),
            declare(FAMILY, "bridges", "ifname", layout.bridges()),
            declare(FAMILY, "pairs", ["ifname", "ifname"], pairs),
            declare(FAMILY, "outbound", "ifname", outbound),
            declare(FAMILY, "floating", "ipv4_addr", sorted({f for f, _, _ in
                                                             _floating(layout)})),
            declare(FAMILY, "ports4", ["ifname", "ipv4_addr"], known["4"]),
            declare(FAMILY, "ports6", ["ifname", "ipv6_addr"], known["6"]),
            declare(FAMILY, "admitted4", ["ifname", "ipv4_addr"], []),
            declare(FAMILY, "admitted6", ["ifname", "ipv6_addr"], []),
            *(declare_map(FAMILY, f"{d}{v}", ["ifname", f"ipv{v}_addr"])
              for d in ("egress", "ingress") for v in ("4", "6"))]


def render_inet(plan: HostPlan, layout: Layout) -> Ruleset:
    """The `inet atwill` table."""
    s = Ruleset(FAMILY, replace_table(FAMILY))
    known = _port_pieces(plan, layout, s)
    s.skeleton += _sets(plan, layout, known)
    pre, post = _nat(plan, layout)
    route_out, nat_local = _local_floating(plan, layout)
    zones_in, zones_out = _zones(layout)
    local = [[match(IIF, "@bridges", "!="), ACCEPT],
             [match(ct("state"), ["established", "related"], "in"), ACCEPT],
             [match(meta("l4proto"), "udp"), match(payload("udp", "dport"), 67), ACCEPT],
             [match(payload("ip", "daddr"), METADATA_IP), match(meta("l4proto"), "tcp"),
              match(payload("tcp", "dport"), 80), ACCEPT],
             [match(meta("l4proto"), anon(["icmp", "ipv6-icmp"])), ACCEPT], [DROP]]
    chains = [("raw", "filter", "prerouting", -300, zones_in),
              ("raw_out", "filter", "output", -300, zones_out),
              ("mangle", "filter", "prerouting", -150, _mangle(plan, layout)),
              ("nat_in", "nat", "prerouting", -100, pre),
              ("nat_out", "nat", "postrouting", 100, post),
              ("route_out", "route", "output", -150, route_out),
              ("nat_local", "nat", "output", -100, nat_local),
              ("forward", "filter", "forward", 0, _forward()),
              # In postrouting: output's rerouting after DNAT does not change the oifname
              # that output chains see (it stays lo for a floating IP), postrouting's does.
              ("to_ports", "filter", "postrouting", 0, _output()),
              ("input", "filter", "input", 0, local)]
    for name, kind, hook, prio, lines in chains:
        s.skeleton.append(base_chain(FAMILY, name, kind, hook, prio))
        s.skeleton += [rule(FAMILY, name, *line) for line in lines]
    # Port chains jump into group sets: the pieces come after the skeleton that declares them.
    return s
