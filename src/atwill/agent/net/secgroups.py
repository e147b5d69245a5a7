"""Security-group rules as nftables JSON rules (pure): one chain per port and direction."""

from __future__ import annotations

import hashlib
from typing import Any

from atwill.agent.net.model import Port, Rule, SecurityGroup
from atwill.agent.net.nftexpr import (
    ACCEPT,
    DROP,
    RETURN,
    Expr,
    add,
    address,
    match,
    meta,
    payload,
)
from atwill.agent.net.nftexpr import rule as nft_rule

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


def _l4(rule: Rule) -> list[Expr]:
    proto = (rule.protocol or "").lower()
    low, high = rule.port_range_min, rule.port_range_max
    if proto in _ICMP:
        name, _ = _ICMP[proto]
        parts = [match(meta("l4proto"), "ipv6-icmp" if name == "icmpv6" else "icmp")]
        if low is not None:
            parts.append(match(payload(name, "type"), low))
            if high is not None:
                parts.append(match(payload(name, "code"), high))
        return parts
    if proto in _L4:
        parts = [match(meta("l4proto"), _L4[proto])]
        if low is not None:
            ports = low if high in (None, low) else {"range": [low, high]}
            parts.append(match(payload("th", "dport"), ports))
        return parts
    if proto not in ("", "any", "0"):
        return [match(meta("l4proto"), int(proto))]
    return []


def match_rule(rule: Rule, groups: set[str]) -> list[Expr] | None:
    """The nft matches for one rule, or None if it can never match here (unknown group)."""
    version = 6 if rule.ethertype == "IPv6" else 4
    family = "ip6" if version == 6 else "ip"
    parts = [match(meta("nfproto"), f"ipv{version}"), *_l4(rule)]
    side = "saddr" if rule.direction == "ingress" else "daddr"
    if rule.remote_ip_prefix:
        parts.append(match(payload(family, side), address(rule.remote_ip_prefix)))
    if rule.remote_group_id:
        if rule.remote_group_id not in groups:
            return None
        parts.append(match(payload(family, side), f"@{set_name(rule.remote_group_id, version)}"))
    return parts


def port_chains(port: Port, groups: dict[str, SecurityGroup]) -> list[dict[str, Any]]:
    """The port's two chains: egress returns when allowed, ingress accepts; both end in drop."""
    commands = []
    for direction, verdict in (("egress", RETURN), ("ingress", ACCEPT)):
        chain = chain_name(port, direction)
        commands.append(add("chain", "inet", name=chain))
        seen: list[Any] = []
        for group_id in port.security_groups:
            group = groups.get(group_id)
            for rule in group.rules if group else ():
                if rule.direction == direction and (parts := match_rule(rule, set(groups))):
                    if parts not in seen:
                        seen.append(parts)
        commands += [nft_rule("inet", chain, *parts, verdict) for parts in seen]
        commands.append(nft_rule("inet", chain, DROP))
    return commands


def group_sets(groups: dict[str, SecurityGroup]) -> list[dict[str, Any]]:
    """One named set per group and IP version with the group's member addresses."""
    sets = []
    for group_id in sorted(groups):
        members = groups[group_id].member_ips
        for version, kind in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            ips = sorted({ip for ip in members if (":" in ip) == (version == 6)})
            body: dict[str, Any] = {"name": set_name(group_id, version), "type": kind}
            if ips:
                body["elem"] = ips
            sets.append(add("set", "inet", **body))
    return sets
