"""The data plane's two nftables tables, built as nft JSON from a plan and applied atomically.

`bridge atwill` sees bridge ports: L2 anti-spoofing, metadata requests bound to the tap they
came in on, and keeping ARP for the per-node gateway and DHCP off the VXLAN ports.
`inet atwill` sees bridged IPv4/IPv6 too (the bridges have br_netfilter switched on):
conntrack zones, marks for policy routing, NAT, and the stateful security groups, which
name ports by (bridge, address) — sound because anti-spoofing guarantees the address. They
are applied on the forward path and on the host's own output path (a connection from the
node, DNATed from a floating IP, meets the same rules).

Each table is a skeleton plus one piece per port. Everything goes in one transaction; if
the kernel refuses it, the skeleton goes alone and each port's piece after it, so one bad
port cannot keep the others unfiltered or unserved. A secured port whose piece is missing
is dropped (its device and addresses are in the skeleton's sets).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

from atwill.agent.net import secgroups
from atwill.agent.net.layout import Layout
from atwill.agent.net.model import HostPlan, Port
from atwill.agent.net.names import METADATA_IP
from atwill.agent.net.nftexpr import (
    ACCEPT,
    DROP,
    TABLE,
    Expr,
    add,
    address,
    anon,
    base_chain,
    concat,
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
from atwill.hostlib.run import run

Command = dict[str, Any]


@dataclass
class Ruleset:
    """One table: the skeleton and, per port id, the commands that admit that port."""

    family: str
    skeleton: list[Command] = field(default_factory=list)
    ports: dict[str, list[Command]] = field(default_factory=dict)

    def document(self, ports: list[str] | None = None) -> dict[str, Any]:
        """The whole table (or the skeleton and the named ports) as one nft JSON document."""
        chosen = self.ports if ports is None else {p: self.ports[p] for p in ports}
        return {"nftables": [*self.skeleton, *(c for cs in chosen.values() for c in cs)]}


def port_addresses(port: Port) -> tuple[list[str], list[str]]:
    """The port's allowed source addresses (fixed IPs and address pairs), IPv4 and IPv6."""
    ips = [f.ip_address for f in port.fixed_ips] + [ip for ip, _ in port.allowed_address_pairs]
    v4 = sorted({str(ipaddress.ip_network(ip, strict=False)) for ip in ips if ":" not in ip})
    v6 = sorted({str(ipaddress.ip_network(ip, strict=False)) for ip in ips if ":" in ip})
    return [a.removesuffix("/32") for a in v4], [a.removesuffix("/128") for a in v6]


def _fixed(port: Port, version: int) -> list[str]:
    return sorted({f.ip_address for f in port.fixed_ips if (":" in f.ip_address) == (version == 6)})


def _spoof_piece(port: Port) -> list[Command]:
    chain = f"as_{secgroups.short(port.id)}"
    macs = sorted({port.mac.lower()} | {m.lower() for _, m in port.allowed_address_pairs if m})
    v4, v6 = port_addresses(port)
    dhcp = [match(payload("ip", "saddr"), "0.0.0.0"),
            match(payload("ip", "daddr"), "255.255.255.255"),
            match(payload("udp", "dport"), 67), ACCEPT]
    ether = payload("ether", "type")
    lines: list[list[Expr]] = [[match(payload("ether", "saddr"), anon(macs), "!="), DROP],
                               [match(payload("arp", "saddr ether"), anon(macs), "!="), DROP]]
    if v4:
        sources = anon([address(a) for a in v4])
        lines += [[match(payload("arp", "saddr ip"), sources, "!="), DROP], dhcp,
                  [match(payload("ip", "saddr"), sources, "!="), DROP]]
    else:
        lines += [[match(ether, "arp"), DROP], dhcp, [match(ether, "ip"), DROP]]
    lines += [[match(payload("ip6", "saddr"),
                     anon([address(a) for a in ("::", "fe80::/10", *v6)]), "!="), DROP],
              [match(ether, anon(["ip", "arp", "ip6"])), ACCEPT], [DROP]]
    return [add("chain", "bridge", name=chain), *(rule("bridge", chain, *x) for x in lines),
            elements("bridge", "spoof", [[port.device, jump(chain)]])]


def render_bridge(plan: HostPlan, layout: Layout) -> Ruleset:
    """The `bridge atwill` table."""
    guarded = [p for p, _ in layout.ports if p.port_security]
    vxlans = sorted(n.vxlan for n in layout.networks.values())
    gateways = sorted({a.split("/")[0] for n in layout.networks.values()
                       for a in n.addresses if ":" not in a})
    allowed = [concat(p.device, p.mac.lower(), ip) for p, _ in layout.ports
               for ip in _fixed(p, 4)]
    iif = meta("iifname")
    to_metadata = [match(payload("ip", "daddr"), METADATA_IP), match(payload("tcp", "dport"), 80)]
    s = Ruleset("bridge", replace_table("bridge"))
    s.skeleton += [
        declare("bridge", "vxlans", "ifname", vxlans),
        declare("bridge", "gateways", "ipv4_addr", gateways),
        declare("bridge", "ports", "ifname", sorted(p.device for p, _ in layout.ports)),
        declare("bridge", "open", "ifname",
                sorted(p.device for p, _ in layout.ports if not p.port_security)),
        declare("bridge", "metadata", ["ifname", "ether_addr", "ipv4_addr"],
                sorted(allowed, key=json.dumps)),
        declare_map("bridge", "spoof", "ifname"),
        add("chain", "bridge", name="overlay"), add("chain", "bridge", name="to_overlay"),
        base_chain("bridge", "prerouting", "filter", "prerouting", -200),
        base_chain("bridge", "forward", "filter", "forward", -200),
        base_chain("bridge", "output", "filter", "output", -200)]
    overlay = [[match(payload("arp", "saddr ip"), "@gateways"), DROP],
               [match(payload("arp", "daddr ip"), "@gateways"), DROP],
               [match(payload("ip", "protocol"), "udp"),
                match(payload("udp", "dport"), anon([67, 68])), DROP],
               [match(payload("ip", "daddr"), METADATA_IP), DROP]]
    s.skeleton += [rule("bridge", "overlay", *x) for x in overlay]
    # Our routing marks must not steer the encapsulated packet (VXLAN keeps skb->mark).
    s.skeleton += [rule("bridge", "to_overlay", mangle(meta("mark"), 0)),
                   rule("bridge", "to_overlay", jump("overlay"))]
    prerouting = [
        # A metadata request is answered for the address it comes from: only the port's own
        # tap, with the port's own MAC, may use that address (port security off or not).
        [match(iif, "@ports"), *to_metadata,
         match(concat(iif, payload("ether", "saddr"), payload("ip", "saddr")), "@metadata",
               "!="), DROP],
        [{"vmap": {"key": iif, "data": "@spoof"}}],
        [match(iif, "@vxlans"), jump("overlay")],
        # A secured port without its anti-spoofing chain (not applied yet, or refused).
        [match(iif, "@ports"), match(iif, "@open", "!="), DROP]]
    s.skeleton += [rule("bridge", "prerouting", *x) for x in prerouting]
    for hook in ("forward", "output"):
        s.skeleton.append(rule("bridge", hook, match(meta("oifname"), "@vxlans"),
                               jump("to_overlay")))
    s.ports = {p.id: _spoof_piece(p) for p in guarded}
    return s


def apply(ruleset: Ruleset) -> dict[str, str]:
    """Replace our table; the ports whose piece the kernel refused, with nft's message.

    Raises RuntimeError if even the skeleton is refused (the old table then stays)."""
    if _load(ruleset.document()) is None:
        return {}
    error = _load(ruleset.document(ports=[]))
    if error is not None:
        raise RuntimeError(f"nft {ruleset.family} table refused: {error}")
    failed = {}
    for port_id, commands in ruleset.ports.items():
        error = _load({"nftables": commands})
        if error is not None:
            failed[port_id] = error
    return failed


def _load(document: dict[str, Any]) -> str | None:
    done = run(["nft", "-j", "-f", "-"], input=json.dumps(document), check=False)
    return None if done.returncode == 0 else (done.stderr or done.stdout).strip()[:500]


def delete(family: str) -> None:
    """Delete our table of one family, if present."""
    run(["nft", "delete", "table", family, TABLE], check=False)


def present(family: str) -> bool:
    """Whether our table of one family exists."""
    return run(["nft", "list", "table", family, TABLE], check=False).returncode == 0

