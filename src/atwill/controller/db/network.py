"""Network tables: networks, subnets, ports and their addresses, routers, floating IPs,
security groups and rules, and network quotas."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, iso, new_uuid, utcnow


class Standard:
    """Neutron's standard attributes: description, tags, revision and timestamps."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(String(64), index=True, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    def touch(self) -> None:
        self.revision_number += 1
        self.updated_at = utcnow()

    def standard(self) -> dict[str, Any]:
        return {"id": self.id, "project_id": self.project_id, "tenant_id": self.project_id,
                "description": self.description, "tags": list(self.tags or []),
                "revision_number": self.revision_number, "created_at": iso(self.created_at),
                "updated_at": iso(self.updated_at)}


class Network(Standard, Base):
    __tablename__ = "networks"
    name: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    network_type: Mapped[str] = mapped_column(String(16), default="vxlan")
    physical_network: Mapped[str | None] = mapped_column(String(64), nullable=True,
                                                         unique=True)
    segmentation_id: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    mtu: Mapped[int] = mapped_column(Integer)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    subnets: Mapped[list[Subnet]] = relationship(
        back_populates="network", cascade="all, delete-orphan", lazy="selectin",
        order_by="Subnet.created_at")

    def to_api(self) -> dict[str, Any]:
        return {**self.standard(), "name": self.name, "admin_state_up": self.admin_state_up,
                "status": "ACTIVE", "shared": self.shared, "router:external": self.external,
                "provider:network_type": self.network_type,
                "provider:physical_network": self.physical_network,
                "provider:segmentation_id": self.segmentation_id, "mtu": self.mtu,
                "port_security_enabled": self.port_security_enabled,
                "subnets": [s.id for s in self.subnets], "availability_zone_hints": [],
                "availability_zones": ["nova"], "ipv4_address_scope": None,
                "ipv6_address_scope": None, "is_default": False}


class Subnet(Standard, Base):
    __tablename__ = "subnets"
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"),
                                            index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    ip_version: Mapped[int] = mapped_column(Integer)
    cidr: Mapped[str] = mapped_column(String(64))
    gateway_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    allocation_pools: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    dns_nameservers: Mapped[list[str]] = mapped_column(JSON, default=list)
    host_routes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    ipv6_ra_mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ipv6_address_mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # No foreign key: deleting a pool is refused in the API while subnets use it, and
    # SQLite could only add the constraint by rebuilding the table.
    subnetpool_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    network: Mapped[Network] = relationship(back_populates="subnets", lazy="joined")

    def to_api(self) -> dict[str, Any]:
        return {**self.standard(), "name": self.name, "network_id": self.network_id,
                "ip_version": self.ip_version, "cidr": self.cidr,
                "gateway_ip": self.gateway_ip, "allocation_pools": self.allocation_pools,
                "dns_nameservers": self.dns_nameservers, "host_routes": self.host_routes,
                "enable_dhcp": self.enable_dhcp, "ipv6_ra_mode": self.ipv6_ra_mode,
                "ipv6_address_mode": self.ipv6_address_mode,
                "subnetpool_id": self.subnetpool_id, "segment_id": None, "service_types": [],
                "dns_publish_fixed_ip": False, "router:external": self.network.external}


class SubnetPool(Standard, Base):
    """Address space subnets are allocated from (prefixes are stored merged)."""

    __tablename__ = "subnetpools"
    name: Mapped[str] = mapped_column(String(255), default="")
    ip_version: Mapped[int] = mapped_column(Integer)
    prefixes: Mapped[list[str]] = mapped_column(JSON, default=list)
    default_prefixlen: Mapped[int] = mapped_column(Integer)
    min_prefixlen: Mapped[int] = mapped_column(Integer)
    max_prefixlen: Mapped[int] = mapped_column(Integer)
    default_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class Port(Standard, Base):
    __tablename__ = "ports"
    __table_args__ = (UniqueConstraint("network_id", "mac_address"),)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"),
                                            index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    mac_address: Mapped[str] = mapped_column(String(32))
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    device_owner: Mapped[str] = mapped_column(String(255), default="", index=True)
    device_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    host_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    allowed_address_pairs: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    fixed_ips: Mapped[list[IPAllocation]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="IPAllocation.id")
    groups: Mapped[list[PortSecurityGroup]] = relationship(
        cascade="all, delete-orphan", lazy="selectin")

    def to_api(self, admin: bool = False) -> dict[str, Any]:
        out = {**self.standard(), "name": self.name, "network_id": self.network_id,
               "mac_address": self.mac_address, "admin_state_up": self.admin_state_up,
               "status": self.status, "device_owner": self.device_owner,
               "device_id": self.device_id,
               "fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                             for a in self.fixed_ips],
               "security_groups": sorted(g.security_group_id for g in self.groups),
               "port_security_enabled": self.port_security_enabled,
               "allowed_address_pairs": self.allowed_address_pairs,
               "binding:vnic_type": "normal", "extra_dhcp_opts": []}
        if admin:
            out.update({"binding:host_id": self.host_id,
                        "binding:vif_type": "tap" if self.host_id else "unbound",
                        "binding:vif_details": {}, "binding:profile": {}})
        return out


class IPAllocation(Base):
    """One fixed IP of a port; unique per network, so no address is handed out twice."""

    __tablename__ = "ip_allocations"
    __table_args__ = (UniqueConstraint("network_id", "ip_address"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"),
                                         index=True)
    subnet_id: Mapped[str] = mapped_column(ForeignKey("subnets.id"), index=True)
    network_id: Mapped[str] = mapped_column(String(36))
    ip_address: Mapped[str] = mapped_column(String(64))


class PortSecurityGroup(Base):
    __tablename__ = "port_security_groups"
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"),
                                         primary_key=True)
    security_group_id: Mapped[str] = mapped_column(ForeignKey("security_groups.id"),
                                                   primary_key=True, index=True)


class Router(Standard, Base):
    __tablename__ = "routers"
    name: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    gw_port_id: Mapped[str | None] = mapped_column(
        ForeignKey("ports.id", ondelete="SET NULL"), nullable=True)
    enable_snat: Mapped[bool] = mapped_column(Boolean, default=True)
    routes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    gw_port: Mapped[Port | None] = relationship(lazy="joined")

    def to_api(self) -> dict[str, Any]:
        gateway = None
        if self.gw_port is not None:
            gateway = {"network_id": self.gw_port.network_id, "enable_snat": self.enable_snat,
                       "external_fixed_ips": [{"subnet_id": a.subnet_id,
                                               "ip_address": a.ip_address}
                                              for a in self.gw_port.fixed_ips]}
        return {**self.standard(), "name": self.name, "admin_state_up": self.admin_state_up,
                "status": "ACTIVE", "external_gateway_info": gateway, "routes": self.routes,
                "availability_zone_hints": [], "availability_zones": ["nova"],
                "distributed": True, "ha": False, "flavor_id": None}


class FloatingIP(Standard, Base):
    __tablename__ = "floating_ips"
    floating_network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    floating_port_id: Mapped[str] = mapped_column(ForeignKey("ports.id"), unique=True)
    floating_ip_address: Mapped[str] = mapped_column(String(64))
    port_id: Mapped[str | None] = mapped_column(ForeignKey("ports.id", ondelete="SET NULL"),
                                                nullable=True, index=True)
    fixed_ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    router_id: Mapped[str | None] = mapped_column(ForeignKey("routers.id"), nullable=True)

    def to_api(self) -> dict[str, Any]:
        return {**self.standard(), "floating_network_id": self.floating_network_id,
                "floating_ip_address": self.floating_ip_address, "port_id": self.port_id,
                "fixed_ip_address": self.fixed_ip_address, "router_id": self.router_id,
                "status": "ACTIVE" if self.port_id else "DOWN", "port_forwardings": [],
                "dns_domain": "", "dns_name": "", "qos_policy_id": None}


class SecurityGroup(Standard, Base):
    __tablename__ = "security_groups"
    name: Mapped[str] = mapped_column(String(255), default="")
    stateful: Mapped[bool] = mapped_column(Boolean, default=True)
    rules: Mapped[list[SecurityGroupRule]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="SecurityGroupRule.created_at",
        foreign_keys="SecurityGroupRule.security_group_id")

    def to_api(self) -> dict[str, Any]:
        return {**self.standard(), "name": self.name, "stateful": self.stateful,
                "shared": False, "security_group_rules": [r.to_api() for r in self.rules]}


class DefaultSecurityGroup(Base):
    """One row per project: makes creating the default group race-free."""

    __tablename__ = "default_security_groups"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("security_groups.id", ondelete="CASCADE"), unique=True)


class SecurityGroupRule(Standard, Base):
    __tablename__ = "security_group_rules"
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("security_groups.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(8))
    ethertype: Mapped[str] = mapped_column(String(4))
    protocol: Mapped[str | None] = mapped_column(String(40), nullable=True)
    port_range_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    port_range_max: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    remote_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("security_groups.id", ondelete="CASCADE"), nullable=True, index=True)

    def to_api(self) -> dict[str, Any]:
        return {**self.standard(), "security_group_id": self.security_group_id,
                "direction": self.direction, "ethertype": self.ethertype,
                "protocol": self.protocol, "port_range_min": self.port_range_min,
                "port_range_max": self.port_range_max,
                "remote_ip_prefix": self.remote_ip_prefix,
                "remote_group_id": self.remote_group_id, "remote_address_group_id": None,
                "normalized_cidr": self.remote_ip_prefix, "belongs_to_default_sg": None}


class NetworkQuota(Base):
    __tablename__ = "network_quotas"
    __table_args__ = (UniqueConstraint("project_id", "resource"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    resource: Mapped[str] = mapped_column(String(64))
    hard_limit: Mapped[int] = mapped_column(Integer)
