"""One node's network desired state (shape: docs/network-desired-state.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...agent.hypervisor.tap import tap_name
from ...core import netrules
from ..db.models import Node
from ..db.network import (
    FloatingIP,
    IPAllocation,
    Network,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from ..revision import node_revision
from . import desired_lists
from .routers import GATEWAY, INTERFACE

VERSION = 1


def network_desired(session: Session, node: Node) -> dict[str, Any]:
    """Networks, local and remote ports, routers, floating IPs and security groups that
    the agent on node needs to serve the ports bound to it (binding:host_id == name)."""
    local = list(session.scalars(select(Port).where(
        Port.host_id == node.name, ~Port.device_owner.startswith("network:"))
        .order_by(Port.id)))
    network_ids = {p.network_id for p in local}
    routers = _routers(session, network_ids)
    gateway_networks = {r.gw_port.network_id for r in routers if r.gw_port is not None}
    networks = session.scalars(select(Network).where(
        Network.id.in_(network_ids | gateway_networks)).order_by(Network.id))
    fips = session.scalars(select(FloatingIP).where(
        FloatingIP.port_id.in_([p.id for p in local])).order_by(FloatingIP.id))
    # Ports on the node's networks bound elsewhere, shared by every node's build: any
    # read at or after the node's revision (desired_lists.py).
    since = node_revision(session, node.id)
    ports = desired_lists.network_ports(session, network_ids, since)
    return {
        "version": VERSION, "node": node.name,
        "networks": [_network(n, node, ports.get(n.id)) for n in networks],
        "ports": [_port(p) for p in local],
        "routers": [_router(session, r) for r in routers],
        "floating_ips": [{"id": f.id, "floating_ip_address": f.floating_ip_address,
                          "floating_network_id": f.floating_network_id, "port_id": f.port_id,
                          "fixed_ip_address": f.fixed_ip_address, "router_id": f.router_id}
                         for f in fips],
        "security_groups": _groups(session, local, since),
    }


def _port(port: Port) -> dict[str, Any]:
    return {"id": port.id, "network_id": port.network_id, "mac_address": port.mac_address,
            "fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                          for a in port.fixed_ips],
            "device_id": port.device_id, "device_owner": port.device_owner,
            "admin_state_up": port.admin_state_up, "tap": tap_name(port.id),
            "port_security_enabled": port.port_security_enabled,
            "allowed_address_pairs": port.allowed_address_pairs,
            "security_groups": sorted(g.security_group_id for g in port.groups)}


def _network(network: Network, node: Node, ports: desired_lists.NetworkPorts | None) -> dict:
    remote, vteps = ports.remote(node.name) if ports is not None else ([], [])
    return {"id": network.id, "name": network.name, "project_id": network.project_id,
            "network_type": network.network_type, "vni": network.segmentation_id,
            "physical_network": network.physical_network, "mtu": network.mtu,
            "external": network.external, "admin_state_up": network.admin_state_up,
            "subnets": [{"id": s.id, "cidr": s.cidr, "ip_version": s.ip_version,
                         "gateway_ip": s.gateway_ip, "enable_dhcp": s.enable_dhcp,
                         "dns_nameservers": s.dns_nameservers, "host_routes": s.host_routes}
                        for s in network.subnets],
            "remote_ports": remote, "vteps": vteps}


def _routers(session: Session, network_ids: set[str]) -> list[Router]:
    with_interface = select(Port.device_id).where(Port.device_owner == INTERFACE,
                                                  Port.network_id.in_(network_ids))
    return list(session.scalars(select(Router).where(Router.id.in_(with_interface))
                                .order_by(Router.id)))


def _router(session: Session, router: Router) -> dict[str, Any]:
    ports = session.scalars(select(Port).where(
        Port.device_id == router.id, Port.device_owner.in_((INTERFACE, GATEWAY)))
        .order_by(Port.id))
    interfaces, gateway = [], None
    for port in ports:
        addresses = [_address(session, a) for a in port.fixed_ips]
        if port.device_owner == GATEWAY:
            gateway = {"network_id": port.network_id, "port_id": port.id,
                       "mac_address": port.mac_address, "enable_snat": router.enable_snat,
                       "addresses": addresses}
        else:
            interfaces.extend({"port_id": port.id, "network_id": port.network_id,
                               "mac_address": port.mac_address, **a} for a in addresses)
    return {"id": router.id, "name": router.name, "project_id": router.project_id,
            "admin_state_up": router.admin_state_up, "gateway": gateway,
            "interfaces": interfaces, "routes": router.routes}


def _address(session: Session, alloc: IPAllocation) -> dict[str, Any]:
    subnet = session.get(Subnet, alloc.subnet_id)
    assert subnet is not None
    return {"subnet_id": subnet.id, "ip_address": alloc.ip_address, "cidr": subnet.cidr,
            "subnet_gateway_ip": subnet.gateway_ip}


def _groups(session: Session, local: list[Port], since: int) -> list[dict[str, Any]]:
    """The local ports' groups, each with the members of the groups its rules name."""
    ids = {g.security_group_id for p in local for g in p.groups}
    groups = list(session.scalars(select(SecurityGroup).where(SecurityGroup.id.in_(ids))
                                  .order_by(SecurityGroup.id)))
    named = {r.remote_group_id for g in groups for r in g.rules if r.remote_group_id}
    # Every address of every port in each named group, any node: shared by every build.
    members = desired_lists.group_members(session, named, since)
    out = []
    for group in groups:
        remote = sorted({r.remote_group_id for r in group.rules if r.remote_group_id})
        out.append({"id": group.id, "name": group.name, "project_id": group.project_id,
                    "stateful": group.stateful, "rules": [_rule(r) for r in group.rules],
                    "remote_group_members": {gid: members[gid] for gid in remote}})
    return out


def _rule(rule: SecurityGroupRule) -> dict[str, Any]:
    return {"id": rule.id, "direction": rule.direction, "ethertype": rule.ethertype,
            "protocol": netrules.protocol_number(rule.protocol),
            "port_range_min": rule.port_range_min, "port_range_max": rule.port_range_max,
            "remote_ip_prefix": rule.remote_ip_prefix, "remote_group_id": rule.remote_group_id}
