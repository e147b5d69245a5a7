"""The agent's own check of every value that reaches nftables, dnsmasq or routing (pure).

The controller validates at the API; this is defence in depth on the node. A bad value
drops only what carries it (one rule, one address pair, one DNS server, one port) and is
reported; it never reaches a rendered config.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from atwill.agent.net.model import HostPlan, Network, Port, Router, Rule, SecurityGroup, Subnet
from atwill.core import addresses

_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
PROTOCOLS = {"tcp", "udp", "sctp", "icmp", "icmpv6", "ipv6-icmp", "any", ""}


def ip(value: Any) -> str:
    """A plain IPv4/IPv6 address, canonical; ValueError for anything else (scope ids too)."""
    return str(addresses.ip(value))


def prefix(value: Any) -> str:
    """An address or CIDR, canonical (host bits cleared); ValueError otherwise."""
    return str(addresses.prefix(value))


def mac(value: Any) -> str:
    """A MAC address, lower case; ValueError otherwise."""
    if not isinstance(value, str) or not _MAC.fullmatch(value.lower()):
        raise ValueError(f"not a MAC address: {value!r:.80}")
    return value.lower()


def ifname(value: Any) -> str:
    """An interface name; ValueError otherwise."""
    if not isinstance(value, str) or not _IFNAME.fullmatch(value):
        raise ValueError(f"not an interface name: {value!r:.80}")
    return value


def _port_number(value: Any, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ValueError(f"not a port/type number: {value!r:.80}")
    return value


def rule(value: Rule) -> Rule:
    """A rule with checked fields; ValueError if any is bad."""
    if value.direction not in ("ingress", "egress") or value.ethertype not in ("IPv4", "IPv6"):
        raise ValueError(f"bad direction/ethertype: {value.direction!r:.20}/"
                         f"{value.ethertype!r:.20}")
    proto = "" if value.protocol is None else str(value.protocol).lower()
    if proto not in PROTOCOLS and not (proto.isdigit() and int(proto) <= 255):
        raise ValueError(f"bad protocol: {value.protocol!r:.80}")
    icmp = proto in ("icmp", "icmpv6", "ipv6-icmp", "1", "58")
    low = _port_number(value.port_range_min, 255 if icmp else 65535)
    high = _port_number(value.port_range_max, 255 if icmp else 65535)
    if not icmp and low is not None and high is not None and low > high:
        raise ValueError(f"bad port range {low}-{high}")
    remote = None if value.remote_ip_prefix is None else prefix(value.remote_ip_prefix)
    if remote and (":" in remote) != (value.ethertype == "IPv6"):
        raise ValueError(f"prefix {remote} is not {value.ethertype}")
    return dataclasses.replace(value, protocol=value.protocol and proto, remote_ip_prefix=remote,
                               port_range_min=low, port_range_max=high)


class Checker:
    """Collects what was refused while cleaning a plan."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def keep(self, where: str, check: Any, *args: Any) -> Any:
        """check(*args), or None (reported) if it raises ValueError."""
        try:
            return check(*args)
        except ValueError as exc:
            self.problems.append(f"{where}: {exc}")
            return None

    def many(self, where: str, check: Any, items: Any) -> tuple[Any, ...]:
        """The items that pass check (each item's failure reported)."""
        kept = (self.keep(where, check, *(i if isinstance(i, tuple) else (i,))) for i in items)
        return tuple(k for k in kept if k is not None)


def _subnet(c: Checker, s: Subnet) -> Subnet:
    if s.gateway_ip is not None:
        ip(s.gateway_ip)
    prefix(s.cidr)
    return dataclasses.replace(
        s, dns_nameservers=c.many(f"subnet {s.id} dns", ip, s.dns_nameservers),
        host_routes=c.many(f"subnet {s.id} route", lambda d, n: (prefix(d), ip(n)),
                           s.host_routes))


def _network(c: Checker, n: Network) -> Network:
    remote = c.many(f"network {n.id} remote port", lambda r: dataclasses.replace(
        r, mac=mac(r.mac), ips=tuple(ip(a) for a in r.ips), vtep=ip(r.vtep)), n.remote_ports)
    return dataclasses.replace(
        n, subnets=c.many(f"network {n.id} subnet", lambda s: _subnet(c, s), n.subnets),
        remote_ports=remote, remote_vteps=c.many(f"network {n.id} vtep", ip, n.remote_vteps))


def _port(c: Checker, p: Port) -> Port:
    pairs = c.many(f"port {p.id} address pair",
                   lambda a, m: (prefix(a), None if m is None else mac(m)),
                   p.allowed_address_pairs)
    fixed = c.many(f"port {p.id} fixed ip",
                   lambda f: dataclasses.replace(f, ip_address=ip(f.ip_address)), p.fixed_ips)
    return dataclasses.replace(p, mac=mac(p.mac), device=ifname(p.device), fixed_ips=fixed,
                               allowed_address_pairs=pairs)


def _router(c: Checker, r: Router) -> Router:
    fips = c.many(f"router {r.id} floating ip", lambda f: dataclasses.replace(
        f, floating_ip=ip(f.floating_ip), fixed_ip=ip(f.fixed_ip)), r.floating_ips)
    return dataclasses.replace(
        r, floating_ips=fips,
        routes=c.many(f"router {r.id} route", lambda d, n: (prefix(d), ip(n)), r.routes),
        interfaces=c.many(f"router {r.id} interface",
                          lambda n, cidr, gw: (n, prefix(cidr), ip(gw)), r.interfaces),
        gateway_ip=c.keep(f"router {r.id} gateway", ip, r.gateway_ip) if r.gateway_ip else None)


def _group(c: Checker, g: SecurityGroup) -> SecurityGroup:
    return dataclasses.replace(g, rules=c.many(f"security group {g.id} rule", rule, g.rules),
                               member_ips=c.many(f"security group {g.id} member", ip,
                                                 g.member_ips))


def clean(plan: HostPlan) -> tuple[HostPlan, list[str]]:
    """The plan with every bad value dropped, and what was dropped."""
    c = Checker()
    external = plan.external
    if external is not None and c.keep("external network", lambda e: (
            prefix(e.cidr), e.gateway_ip is None or ip(e.gateway_ip), ifname(e.bridge)),
            external) is None:
        external = None
    metadata = {ip(k): v for k, v in plan.metadata.items()
                if c.keep("metadata address", ip, k) is not None}
    cleaned = dataclasses.replace(
        plan, networks=list(c.many("network", lambda n: _network(c, n), plan.networks)),
        ports=list(c.many("port", lambda p: _port(c, p), plan.ports)),
        security_groups=list(c.many("security group", lambda g: _group(c, g),
                                    plan.security_groups)),
        routers=list(c.many("router", lambda r: _router(c, r), plan.routers)),
        external=external, metadata=metadata,
        vtep_local=c.keep("vtep", ip, plan.vtep_local) if plan.vtep_local else None)
    return cleaned, c.problems
