"""Neutron's documents of the network rows, with the standard attributes they share."""

from __future__ import annotations

from typing import Any

from ..db.base import iso
from ..db.network import (
    FloatingIP,
    Network,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Standard,
    Subnet,
)


def standard(row: Standard) -> dict[str, Any]:
    return {"id": row.id, "project_id": row.project_id, "tenant_id": row.project_id,
            "description": row.description, "tags": list(row.tags or []),
            "revision_number": row.revision_number, "created_at": iso(row.created_at),
            "updated_at": iso(row.updated_at)}


def network(network: Network) -> dict[str, Any]:
    return {**standard(network), "name": network.name, "admin_state_up": network.admin_state_up,
            "status": "ACTIVE", "shared": network.shared, "router:external": network.external,
            "provider:network_type": network.network_type,
            "provider:physical_network": network.physical_network,
            "provider:segmentation_id": network.segmentation_id, "mtu": network.mtu,
            "port_security_enabled": network.port_security_enabled,
            "subnets": [s.id for s in network.subnets], "availability_zone_hints": [],
            "availability_zones": ["nova"], "ipv4_address_scope": None,
            "ipv6_address_scope": None, "is_default": False}


def subnet(subnet: Subnet) -> dict[str, Any]:
    return {**standard(subnet), "name": subnet.name, "network_id": subnet.network_id,
            "ip_version": subnet.ip_version, "cidr": subnet.cidr,
            "gateway_ip": subnet.gateway_ip, "allocation_pools": subnet.allocation_pools,
            "dns_nameservers": subnet.dns_nameservers, "host_routes": subnet.host_routes,
            "enable_dhcp": subnet.enable_dhcp, "ipv6_ra_mode": subnet.ipv6_ra_mode,
            "ipv6_address_mode": subnet.ipv6_address_mode,
            "subnetpool_id": subnet.subnetpool_id, "segment_id": None, "service_types": [],
            "dns_publish_fixed_ip": False, "router:external": subnet.network.external}


def port(port: Port, admin: bool = False) -> dict[str, Any]:
    out = {**standard(port), "name": port.name, "network_id": port.network_id,
           "mac_address": port.mac_address, "admin_state_up": port.admin_state_up,
           "status": port.status, "device_owner": port.device_owner,
           "device_id": port.device_id,
           "fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                         for a in port.fixed_ips],
           "security_groups": sorted(g.security_group_id for g in port.groups),
           "port_security_enabled": port.port_security_enabled,
           "allowed_address_pairs": port.allowed_address_pairs,
           "binding:vnic_type": "normal", "extra_dhcp_opts": []}
    if admin:
        out.update({"binding:host_id": port.host_id,
                    "binding:vif_type": "tap" if port.host_id else "unbound",
                    "binding:vif_details": {}, "binding:profile": {}})
    return out


def router(router: Router) -> dict[str, Any]:
    gateway = None
    if router.gw_port is not None:
        gateway = {"network_id": router.gw_port.network_id, "enable_snat": router.enable_snat,
                   "external_fixed_ips": [{"subnet_id": a.subnet_id,
                                           "ip_address": a.ip_address}
                                          for a in router.gw_port.fixed_ips]}
    return {**standard(router), "name": router.name, "admin_state_up": router.admin_state_up,
            "status": "ACTIVE", "external_gateway_info": gateway, "routes": router.routes,
            "availability_zone_hints": [], "availability_zones": ["nova"],
            "distributed": True, "ha": False, "flavor_id": None}


def floating_ip(fip: FloatingIP) -> dict[str, Any]:
    return {**standard(fip), "floating_network_id": fip.floating_network_id,
            "floating_ip_address": fip.floating_ip_address, "port_id": fip.port_id,
            "fixed_ip_address": fip.fixed_ip_address, "router_id": fip.router_id,
            "status": "ACTIVE" if fip.port_id else "DOWN", "port_forwardings": [],
            "dns_domain": "", "dns_name": "", "qos_policy_id": None}


def security_group(group: SecurityGroup) -> dict[str, Any]:
    return {**standard(group), "name": group.name, "stateful": group.stateful,
            "shared": False, "security_group_rules": [security_group_rule(r) for r in group.rules]}


def security_group_rule(rule: SecurityGroupRule) -> dict[str, Any]:
    return {**standard(rule), "security_group_id": rule.security_group_id,
            "direction": rule.direction, "ethertype": rule.ethertype,
            "protocol": rule.protocol, "port_range_min": rule.port_range_min,
            "port_range_max": rule.port_range_max,
            "remote_ip_prefix": rule.remote_ip_prefix,
            "remote_group_id": rule.remote_group_id, "remote_address_group_id": None,
            "normalized_cidr": rule.remote_ip_prefix, "belongs_to_default_sg": None}
