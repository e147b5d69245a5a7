"""The data plane's two nftables tables, rendered from a plan and replaced atomically.

`bridge atwill` sees bridge ports: L2 anti-spoofing, and keeping ARP for the per-node gateway
and DHCP off the VXLAN ports. `inet atwill` sees bridged IPv4/IPv6 too (the bridges have
br_netfilter switched on): conntrack zones, marks for policy routing, NAT, and the stateful
security groups, which name ports by (bridge, address) — sound because anti-spoofing
guarantees the address.
"""

from __future__ import annotations

import ipaddress

from atwill.agent.host.run import run
from atwill.agent.net import secgroups
from atwill.agent.net.layout import Layout
from atwill.agent.net.model import HostPlan, Port
from atwill.agent.net.names import METADATA_IP

TABLE = "atwill"


def _set(items: list[str] | set[str]) -> str:
    return "{ " + ", ".join(sorted(items)) + " }"


def _q(name: str) -> str:
    return f'"{name}"'


def _declare(name: str, kind: str, elements: list[str], flags: str = "") -> str:
    body = f" elements = {_set(elements)};" if elements else ""
    return f"\tset {name} {{ type {kind};{flags}{body} }}\n"


def _map(name: str, kind: str, elements: list[str]) -> str:
    body = f" elements = {_set(elements)};" if elements else ""
    return f"\tmap {name} {{ type {kind};{body} }}\n"


def port_addresses(port: Port) -> tuple[list[str], list[str]]:
    """The port's allowed source addresses (fixed IPs and address pairs), IPv4 and IPv6."""
    ips = [f.ip_address for f in port.fixed_ips] + [ip for ip, _ in port.allowed_address_pairs]
    v4 = sorted({str(ipaddress.ip_network(ip, strict=False)) for ip in ips if ":" not in ip})
    v6 = sorted({str(ipaddress.ip_network(ip, strict=False)) for ip in ips if ":" in ip})
    return [a.removesuffix("/32") for a in v4], [a.removesuffix("/128") for a in v6]


def _spoof_chain(port: Port) -> str:
    macs = {port.mac.lower()} | {m.lower() for _, m in port.allowed_address_pairs if m}
    v4, v6 = port_addresses(port)
    lines = [f"ether saddr != {_set(macs)} drop", f"arp saddr ether != {_set(macs)} drop"]
    if v4:
        lines += [f"arp saddr ip != {_set(v4)} drop",
                  "ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp dport 67 accept",
                  f"ether type ip ip saddr != {_set(v4)} drop"]
    else:
        lines += ["ether type arp drop",
                  "ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp dport 67 accept",
                  "ether type ip drop"]
    lines += [f"ether type ip6 ip6 saddr != {_set(['::', 'fe80::/10', *v6])} drop",
              "ether type { ip, arp, ip6 } accept", "drop"]
    body = "".join(f"\t\t{line}\n" for line in lines)
    return f"\tchain as_{secgroups.short(port.id)} {{\n{body}\t}}\n"


def render_bridge(plan: HostPlan, layout: Layout) -> str:
    """The `bridge atwill` table."""
    guarded = [p for p, _ in layout.ports if p.port_security]
    vxlans = [n.vxlan for n in layout.networks.values()]
    gateways = sorted({a.split("/")[0] for n in layout.networks.values()
                       for a in n.addresses if ":" not in a})
    guard = ["ether type arp arp saddr ip @gateways drop",
             "ether type arp arp daddr ip @gateways drop",
             "ether type ip ip protocol udp udp dport { 67, 68 } drop"]
    guard_body = "".join(f"\t\t{line}\n" for line in guard)
    spoof = [f"{_q(p.device)} : jump as_{secgroups.short(p.id)}" for p in guarded]
    text = [f"table bridge {TABLE} {{\n",
            *(_spoof_chain(p) for p in guarded),
            f"\tchain overlay {{\n{guard_body}\t}}\n",
            # Our routing marks must not steer the encapsulated packet (VXLAN keeps skb->mark).
            "\tchain to_overlay {\n\t\tmeta mark set 0\n\t\tjump overlay\n\t}\n",
            _declare("vxlans", "ifname", [_q(v) for v in vxlans]),
            _declare("gateways", "ipv4_addr", gateways),
            _map("spoof", "ifname : verdict", spoof),
            "\tchain prerouting {\n\t\ttype filter hook prerouting priority -200; policy accept;\n"
            "\t\tiifname vmap @spoof\n\t\tiifname @vxlans jump overlay\n\t}\n",
            "\tchain forward {\n\t\ttype filter hook forward priority -200; policy accept;\n"
            "\t\toifname @vxlans jump to_overlay\n\t}\n",
            "\tchain output {\n\t\ttype filter hook output priority -200; policy accept;\n"
            "\t\toifname @vxlans jump to_overlay\n\t}\n",
            "}\n"]
    return "".join(text)


def _zones(layout: Layout) -> tuple[list[str], list[str]]:
    # Inside a domain (its subnets, broadcast, the node's own services) both directions share
    # its zone; towards the outside only the original direction does, so NATed replies (which
    # arrive with no zone) still find their entry. Local answers (DHCP, metadata) get the zone
    # of the bridge they leave by, or two networks' identical DHCP replies would clash.
    pre, out = [], []
    for domain in layout.domains.values():
        bridges = _set([_q(b) for b in domain.bridges])
        inside = sorted({c for c, _ in domain.cidrs if ":" not in c}
                        | {"255.255.255.255", METADATA_IP})
        pre.append(f"iifname {bridges} ip daddr {_set(inside)} "
                   f"ct zone set {domain.offset} accept")
        pre.append(f"iifname {bridges} ct original zone set {domain.offset}")
        out.append(f"oifname {bridges} ct zone set {domain.offset}")
    return pre, out


def _floating(plan: HostPlan, layout: Layout) -> list[tuple[str, str, int, str]]:
    """(floating ip, fixed ip, mark, bridge) for every floating IP of a local router."""
    result = []
    for domain in layout.domains.values():
        if domain.router is None:
            continue
        for fip in domain.router.floating_ips:
            result.append((fip.floating_ip, fip.fixed_ip, domain.mark, ""))
    return result


def _nat(plan: HostPlan, layout: Layout) -> tuple[list[str], list[str]]:
    pre, post = [], []
    ext = plan.external
    for domain in layout.domains.values():
        router = domain.router
        if router is None or ext is None or router.external_network_id is None:
            continue
        for fip in router.floating_ips:
            pre.append(f"iifname != @bridges ip daddr {fip.floating_ip} "
                       f"dnat ip to {fip.fixed_ip}")
            post.append(f"oifname {_q(ext.bridge)} meta mark {domain.mark:#x} "
                        f"ip saddr {fip.fixed_ip} snat ip to {fip.floating_ip}")
        if ext.nat_to_host and (router.enable_snat or router.floating_ips):
            # One NAT per flow: towards the host's routes, floating IPs cannot be kept.
            post.append(f"oifname != @bridges meta mark {domain.mark:#x} masquerade")
        elif router.enable_snat:
            post.append(f"oifname {_q(ext.bridge)} meta mark {domain.mark:#x} masquerade")
    return pre, post


def _local_floating(plan: HostPlan, layout: Layout) -> tuple[list[str], list[str]]:
    """The host's own connections to floating IPs (which are local addresses on the
    external bridge): DNAT in output, after a mark that routes them in the domain."""
    route, nat = [], []
    if plan.external is None:
        return route, nat
    for floating, fixed, mark, _ in _floating(plan, layout):
        route.append(f"ip daddr {floating} meta mark set {mark:#x}")
        nat.append(f"ip daddr {floating} dnat ip to {fixed}")
    return route, nat


def _port_maps(layout: Layout) -> tuple[list[str], list[str], list[str], list[str]]:
    eg4, in4, eg6, in6 = [], [], [], []
    for port, net in layout.ports:
        if not port.port_security:
            continue
        v4, v6 = port_addresses(port)
        for ip in (a for a in v4 if "/" not in a):
            eg4.append(f"{_q(net.bridge)} . {ip} : jump {secgroups.chain_name(port, 'egress')}")
            in4.append(f"{_q(net.bridge)} . {ip} : jump {secgroups.chain_name(port, 'ingress')}")
        for ip in (a for a in v6 if "/" not in a):
            eg6.append(f"{_q(net.bridge)} . {ip} : jump {secgroups.chain_name(port, 'egress')}")
            in6.append(f"{_q(net.bridge)} . {ip} : jump {secgroups.chain_name(port, 'ingress')}")
    return eg4, in4, eg6, in6


def render_inet(plan: HostPlan, layout: Layout) -> str:
    """The `inet atwill` table."""
    groups = {g.id: g for g in plan.security_groups}
    bridges = [_q(b) for b in layout.bridges()]
    pairs = [f"{_q(a)} . {_q(b)}" for d in layout.domains.values()
             for a in d.bridges for b in d.bridges]
    ext = plan.external
    if ext is not None:
        pairs += [f"{_q(b)} . {_q(ext.bridge)}" for d in layout.domains.values()
                  if d.router and d.router.external_network_id for b in d.bridges]
    marks = [f"{_q(b)} : {d.mark:#x}" for d in layout.domains.values() for b in d.bridges]
    fips = [f"{f} : {mark:#x}" for f, _, mark, _ in _floating(plan, layout)]
    eg4, in4, eg6, in6 = _port_maps(layout)
    pre, post = _nat(plan, layout)
    mangle = []
    if marks:
        mangle.append(f"iifname @bridges meta mark set iifname map {_set(marks)} "
                      "ct mark set meta mark accept")
    mangle.append("ct mark & 0xffff0000 == 0x41570000 meta mark set ct mark accept")
    if fips:
        mangle.append(f"ip daddr @floating meta mark set ip daddr map {_set(fips)} "
                      "ct mark set meta mark")
    outbound = [_q(b) for d in layout.domains.values()
                if ext is not None and ext.nat_to_host and d.router
                and d.router.external_network_id for b in d.bridges]
    forward = ["iifname != @bridges oifname != @bridges accept",
               "ct state established,related accept", "ct state invalid drop",
               "iifname @bridges oifname @bridges iifname . oifname != @pairs drop",
               # Leaving for a non-bridge: only paired (the external bridge), or by the
               # host's routes from a domain whose router has a gateway (nat_to_host).
               "iifname @bridges oifname != @bridges iifname != @outbound "
               "iifname . oifname != @pairs drop",
               "oifname @bridges iifname != @bridges ct status & dnat != dnat drop",
               "iifname . ip saddr vmap @egress4", "iifname . ip6 saddr vmap @egress6",
               "oifname . ip daddr vmap @ingress4", "oifname . ip6 daddr vmap @ingress6"]
    local = ["iifname != @bridges accept", "ct state established,related accept",
             "meta l4proto udp udp dport 67 accept",
             f"ip daddr {METADATA_IP} tcp dport 80 accept",
             "meta l4proto { icmp, ipv6-icmp } accept", "drop"]
    route_out, nat_local = _local_floating(plan, layout)
    zones_in, zones_out = _zones(layout)
    chains = [("raw", "prerouting", "raw", zones_in), ("raw_out", "output", "raw", zones_out),
              ("mangle", "prerouting", "mangle", mangle),
              ("nat_in", "prerouting", "dstnat", pre), ("nat_out", "postrouting", "srcnat", post),
              ("route_out", "output", "mangle", route_out),
              ("nat_local", "output", "-100", nat_local),
              ("forward", "forward", "filter", forward), ("input", "input", "filter", local)]
    text = [f"table inet {TABLE} {{\n",
            *(c for p, _ in layout.ports if p.port_security
              for c in secgroups.port_chains(p, groups)),
            *secgroups.group_sets(groups),
            _declare("bridges", "ifname", bridges),
            _declare("pairs", "ifname . ifname", pairs),
            _declare("outbound", "ifname", outbound),
            _declare("floating", "ipv4_addr", [f for f, _, _, _ in _floating(plan, layout)]),
            _map("egress4", "ifname . ipv4_addr : verdict", eg4),
            _map("ingress4", "ifname . ipv4_addr : verdict", in4),
            _map("egress6", "ifname . ipv6_addr : verdict", eg6),
            _map("ingress6", "ifname . ipv6_addr : verdict", in6)]
    for name, hook, priority, lines in chains:
        kind = "nat" if name.startswith("nat_") else "route" if name == "route_out" \
            else "filter"
        body = "".join(f"\t\t{line}\n" for line in lines)
        text.append(f"\tchain {name} {{\n\t\ttype {kind} hook {hook} priority {priority}; "
                    f"policy accept;\n{body}\t}}\n")
    text.append("}\n")
    return "".join(text)


def replace(family: str, text: str) -> None:
    """Swap our table of one family for text in a single transaction."""
    run(["nft", "-f", "-"],
        input=f"table {family} {TABLE}\ndelete table {family} {TABLE}\n{text}")


def delete(family: str) -> None:
    """Delete our table of one family, if present."""
    run(["nft", "delete", "table", family, TABLE], check=False)


def present(family: str) -> bool:
    """Whether our table of one family exists."""
    return run(["nft", "list", "table", family, TABLE], check=False).returncode == 0
