"""Security-group rules as nftables statements (pure): one chain per port and direction."""

from __future__ import annotations

import hashlib

from atwill.agent.net.model import Port, Rule, SecurityGroup

_L4 = {"tcp": "tcp", "udp": "udp", "sctp": "sctp", "6": "tcp", "17": "udp", "132": "sctp"}
_ICMP = {"icmp": ("icmp", 4), "1": ("icmp", 4), "icmpv6": ("icmpv6", 6),
         "ipv6-icmp": ("icmpv6", 6), "58": ("icmpv6", 6)}


def short(text: str) -> str:
    """A short, nft-safe identifier for an id."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def set_name(group_id: str, version: int) -> str:
    """The named set holding a group's member addresses of one IP version."""
    return f"sg_{short(group_id)}_{version}"


def chain_name(port: Port, direction: str) -> str:
    """The port's chain for one direction (ingress: to the port; egress: from it)."""
    return f"{'in' if direction == 'ingress' else 'eg'}_{short(port.id)}"


def match(rule: Rule, groups: set[str]) -> str | None:
    """The nft match for one rule, or None if it can never match here (unknown group)."""
    version = 6 if rule.ethertype == "IPv6" else 4
    family = "ip6" if version == 6 else "ip"
    parts = [f"meta nfproto ipv{version}"]
    proto = (rule.protocol or "").lower()
    if proto in _ICMP:
        name, _ = _ICMP[proto]
        parts.append(f"meta l4proto {'ipv6-icmp' if name == 'icmpv6' else 'icmp'}")
        if rule.port_range_min is not None:
            parts.append(f"{name} type {rule.port_range_min}")
            if rule.port_range_max is not None:
                parts.append(f"{name} code {rule.port_range_max}")
    elif proto in _L4:
        parts.append(f"meta l4proto {_L4[proto]}")
        low, high = rule.port_range_min, rule.port_range_max
        if low is not None:
            parts.append(f"th dport {low}" if high in (None, low) else f"th dport {low}-{high}")
    elif proto not in ("", "any", "0"):
        parts.append(f"meta l4proto {int(proto)}")
    side = "saddr" if rule.direction == "ingress" else "daddr"
    if rule.remote_ip_prefix:
        parts.append(f"{family} {side} {rule.remote_ip_prefix}")
    if rule.remote_group_id:
        if rule.remote_group_id not in groups:
            return None
        parts.append(f"{family} {side} @{set_name(rule.remote_group_id, version)}")
    return " ".join(parts)


def port_chains(port: Port, groups: dict[str, SecurityGroup]) -> list[str]:
    """The port's two chains: egress returns when allowed, ingress accepts; both end in drop."""
    chains = []
    for direction, verdict in (("egress", "return"), ("ingress", "accept")):
        lines = []
        for group_id in port.security_groups:
            group = groups.get(group_id)
            for rule in group.rules if group else ():
                if rule.direction == direction and (text := match(rule, set(groups))):
                    lines.append(f"{text} {verdict}")
        body = "".join(f"\t\t{line}\n" for line in dict.fromkeys(lines))
        chains.append(f"\tchain {chain_name(port, direction)} {{\n{body}\t\tdrop\n\t}}\n")
    return chains


def group_sets(groups: dict[str, SecurityGroup]) -> list[str]:
    """One named set per group and IP version with the group's member addresses."""
    sets = []
    for group_id in sorted(groups):
        members = groups[group_id].member_ips
        for version, kind in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            ips = sorted({ip for ip in members if (":" in ip) == (version == 6)})
            elements = f" elements = {{ {', '.join(ips)} }};" if ips else ""
            sets.append(f"\tset {set_name(group_id, version)} {{ type {kind};{elements} }}\n")
    return sets
