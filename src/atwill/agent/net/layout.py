"""Pure derivations from a HostPlan: device names, service addresses and routing domains.

A routing domain is a router present on this node, or a network attached to none; each has
its own policy-routing table, conntrack zone and mark, so overlapping CIDRs can coexist.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from atwill.agent.net import names
from atwill.agent.net.model import HostPlan, Network, Port, Router, Subnet


@dataclass(frozen=True)
class NetLayout:
    network: Network
    bridge: str
    vxlan: str
    mac: str  # the bridge's MAC, identical on every node
    domain: str
    addresses: tuple[str, ...]  # ip/prefix on the bridge: one service address per subnet


@dataclass
class Domain:
    id: str
    offset: int
    router: Router | None
    bridges: list[str] = field(default_factory=list)
    cidrs: list[tuple[str, str]] = field(default_factory=list)  # (cidr, bridge)

    @property
    def table(self) -> int:
        return names.TABLE_BASE + self.offset

    @property
    def mark(self) -> int:
        return names.MARK_BASE + self.offset


@dataclass
class Layout:
    networks: dict[str, NetLayout]
    domains: dict[str, Domain]
    ports: list[tuple[Port, NetLayout]]

    def bridges(self) -> list[str]:
        return sorted(n.bridge for n in self.networks.values())


def service_ip(subnet: Subnet) -> str | None:
    """The bridge's address in a subnet: its gateway (never handed out by IPAM), if any."""
    return subnet.gateway_ip


def _with_prefix(subnet: Subnet, ip: str) -> str:
    return f"{ip}/{ipaddress.ip_network(subnet.cidr, strict=False).prefixlen}"


def domain_of(plan: HostPlan) -> dict[str, str]:
    """network id -> domain id (the router attached to it here, else the network itself)."""
    result = {n.id: f"net:{n.id}" for n in plan.networks}
    for router in sorted(plan.routers, key=lambda r: r.id):
        for network_id, _cidr, _gw in router.interfaces:
            if network_id in result and result[network_id].startswith("net:"):
                result[network_id] = f"router:{router.id}"
    return result


def build(plan: HostPlan, tables: dict[str, int] | None = None) -> Layout:
    """The layout of a plan; tables maps domain ids to offsets already in use (kept)."""
    tables = dict(tables or {})
    by_domain = domain_of(plan)
    routers = {f"router:{r.id}": r for r in plan.routers}
    wanted = sorted(set(by_domain.values()))
    taken = {tables[d] for d in wanted if d in tables}
    domains: dict[str, Domain] = {}
    for domain_id in wanted:
        if domain_id not in tables:
            tables[domain_id] = names.table_offset(domain_id, taken)
            taken.add(tables[domain_id])
        domains[domain_id] = Domain(domain_id, tables[domain_id], routers.get(domain_id))
    networks: dict[str, NetLayout] = {}
    for network in plan.networks:
        bridge = names.bridge_name(plan.node, network.id)
        addresses = tuple(_with_prefix(s, ip) for s in network.subnets
                          if (ip := service_ip(s)) is not None)
        networks[network.id] = NetLayout(network, bridge, names.vxlan_name(plan.node, network.id),
                                         names.gateway_mac(network.id),
                                         by_domain[network.id], addresses)
        domain = domains[by_domain[network.id]]
        domain.bridges.append(bridge)
        domain.cidrs += [(str(ipaddress.ip_network(s.cidr, strict=False)), bridge)
                         for s in network.subnets]
    ports = [(p, networks[p.network_id]) for p in plan.ports if p.network_id in networks]
    return Layout(networks, domains, ports)
