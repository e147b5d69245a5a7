"""The controller's network desired state (docs/network-desired-state.md) as a HostPlan."""

from __future__ import annotations

from typing import Any

from ..hypervisor.tap import tap_name
from .model import (
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

PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}


def _subnet(s: dict[str, Any]) -> Subnet:
    routes = tuple((r["destination"], r["nexthop"]) for r in s.get("host_routes") or [])
    return Subnet(id=s["id"], cidr=s["cidr"], ip_version=s["ip_version"],
                  gateway_ip=s.get("gateway_ip"), enable_dhcp=s.get("enable_dhcp", True),
                  dns_nameservers=tuple(s.get("dns_nameservers") or ()), host_routes=routes)


def _network(n: dict[str, Any]) -> Network:
    remote = tuple(RemotePort(mac=r["mac_address"], ips=tuple(r["ip_addresses"]),
                              vtep=r["vtep"]) for r in n.get("remote_ports", []))
    return Network(id=n["id"], vni=int(n.get("vni") or 0), mtu=int(n["mtu"]),
                   subnets=tuple(_subnet(s) for s in n.get("subnets", [])),
                   remote_ports=remote, remote_vteps=tuple(n.get("vteps", [])),
                   external=bool(n.get("external")))


def _port(p: dict[str, Any], hostnames: dict[str, str]) -> Port:
    pairs = tuple((a["ip_address"], a.get("mac_address"))
                  for a in p.get("allowed_address_pairs") or [])
    return Port(id=p["id"], network_id=p["network_id"], mac=p["mac_address"],
                fixed_ips=tuple(FixedIp(f["subnet_id"], f["ip_address"])
                                for f in p.get("fixed_ips", [])),
                device=tap_name(p["id"]), security_groups=tuple(p.get("security_groups", [])),
                port_security=p.get("port_security_enabled", True),
                allowed_address_pairs=pairs, hostname=hostnames.get(p.get("device_id", "")),
                device_id=p.get("device_id"))


def _rule(r: dict[str, Any]) -> Rule:
    protocol = r.get("protocol")
    if isinstance(protocol, int):
        protocol = PROTOCOLS.get(protocol, str(protocol))
    return Rule(direction=r["direction"], ethertype=r["ethertype"], protocol=protocol,
                port_range_min=r.get("port_range_min"), port_range_max=r.get("port_range_max"),
                remote_ip_prefix=r.get("remote_ip_prefix"),
                remote_group_id=r.get("remote_group_id"))


def _groups(raw: list[dict[str, Any]]) -> list[SecurityGroup]:
    """Local groups with their rules, plus every group a rule names, with its members."""
    rules = {g["id"]: tuple(_rule(r) for r in g.get("rules", [])) for g in raw}
    members: dict[str, tuple[str, ...]] = {}
    for group in raw:
        for gid, by_family in (group.get("remote_group_members") or {}).items():
            members[gid] = tuple(sorted({*by_family.get("IPv4", []),
                                         *by_family.get("IPv6", [])}))
    ids = list(dict.fromkeys([*rules, *members]))
    return [SecurityGroup(id=gid, rules=rules.get(gid, ()), member_ips=members.get(gid, ()))
            for gid in ids]


def _router(r: dict[str, Any], fips: list[dict[str, Any]]) -> Router:
    gateway = r.get("gateway") or {}
    gw_ip = next((a["ip_address"] for a in gateway.get("addresses", [])
                  if ":" not in a["ip_address"]), None)
    interfaces = tuple((i["network_id"], i["cidr"], i["ip_address"])
                       for i in r.get("interfaces", []))
    routes = tuple((x["destination"], x["nexthop"]) for x in r.get("routes") or [])
    mine = tuple(FloatingIp(f["floating_ip_address"], f["fixed_ip_address"], f["port_id"])
                 for f in fips if f.get("router_id") == r["id"] and f.get("fixed_ip_address"))
    return Router(id=r["id"], interfaces=interfaces, gateway_ip=gw_ip,
                  external_network_id=gateway.get("network_id"),
                  enable_snat=gateway.get("enable_snat", True), routes=routes,
                  floating_ips=mine)


def _external(desired: dict[str, Any], bridge: str | None) -> External | None:
    if not bridge:
        return None
    for n in desired.get("networks", []):
        if n.get("external") and n.get("subnets"):
            subnet = next((s for s in n["subnets"] if s["ip_version"] == 4), n["subnets"][0])
            return External(network_id=n["id"], cidr=subnet["cidr"],
                            gateway_ip=subnet.get("gateway_ip"), bridge=bridge)
    return None


def host_plan(node: str, network: dict[str, Any] | None, instances: list[dict[str, Any]],
              vtep_local: str | None, external_bridge: str | None = None) -> HostPlan:
    """Everything the data plane must make true, from the two parts of the desired state."""
    network = network or {}
    hostnames = {i["id"]: i["hostname"] for i in instances}
    metadata: dict[str, dict] = {}
    for inst in instances:
        entry = {"meta_data": inst["metadata"], "network_data": inst["network_data"]}
        if inst.get("user_data") is not None:
            entry["user_data"] = inst["user_data"]
        for nic in inst.get("nics", []):
            for fixed in nic.get("fixed_ips", []):
                metadata[fixed["ip_address"]] = entry
    fips = network.get("floating_ips", [])
    return HostPlan(
        node=node,
        networks=[_network(n) for n in network.get("networks", []) if not n.get("external")],
        ports=[_port(p, hostnames) for p in network.get("ports", [])],
        security_groups=_groups(network.get("security_groups", [])),
        routers=[_router(r, fips) for r in network.get("routers", [])],
        external=_external(network, external_bridge), metadata=metadata,
        vtep_local=vtep_local)
