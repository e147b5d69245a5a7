"""What the agent's data plane is asked to make true on its host (one node's share).

The controller's desired state is converted into these plain values by the
agent; the data plane (bridges, VXLAN, dnsmasq, nftables, routing, metadata)
only ever sees them, so it can be built and tested on its own.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Subnet:
    id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    enable_dhcp: bool = True
    dns_nameservers: tuple[str, ...] = ()
    host_routes: tuple[tuple[str, str], ...] = ()  # (destination CIDR, nexthop)


@dataclass(frozen=True)
class FixedIp:
    subnet_id: str
    ip_address: str


@dataclass(frozen=True)
class Port:
    """A port bound to this node: a VM's tap, or (in tests) a veth of a 'port host'."""

    id: str
    network_id: str
    mac: str
    fixed_ips: tuple[FixedIp, ...]
    device: str  # the host-side interface name to plug into the network's bridge
    security_groups: tuple[str, ...] = ()
    port_security: bool = True
    allowed_address_pairs: tuple[tuple[str, str | None], ...] = ()  # (ip or CIDR, mac)
    hostname: str | None = None
    device_id: str | None = None


@dataclass(frozen=True)
class RemotePort:
    """A port of the same network on another node, reached through that node's VTEP."""

    mac: str
    ips: tuple[str, ...]
    vtep: str  # the other node's overlay address


@dataclass(frozen=True)
class Network:
    id: str
    vni: int
    mtu: int
    subnets: tuple[Subnet, ...]
    remote_ports: tuple[RemotePort, ...] = ()
    remote_vteps: tuple[str, ...] = ()  # every other node with a port on this network
    external: bool = False


@dataclass(frozen=True)
class Rule:
    direction: str  # ingress | egress
    ethertype: str  # IPv4 | IPv6
    protocol: str | None = None  # tcp, udp, icmp, icmpv6, a number, or None for any
    port_range_min: int | None = None  # for icmp: the type
    port_range_max: int | None = None  # for icmp: the code
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    rules: tuple[Rule, ...]
    member_ips: tuple[str, ...] = ()  # every address of every port in the group, any node


@dataclass(frozen=True)
class FloatingIp:
    floating_ip: str
    fixed_ip: str
    port_id: str


@dataclass(frozen=True)
class Router:
    id: str
    interfaces: tuple[tuple[str, str, str], ...]  # (network_id, subnet CIDR, gateway ip)
    gateway_ip: str | None = None  # on the external network
    external_network_id: str | None = None
    enable_snat: bool = True
    routes: tuple[tuple[str, str], ...] = ()
    floating_ips: tuple[FloatingIp, ...] = ()  # only those of ports on this node


@dataclass(frozen=True)
class External:
    """How this node reaches 'outside': an uplink bridge on the external network."""

    network_id: str
    cidr: str
    gateway_ip: str | None
    bridge: str  # the host bridge that carries the external network
    # All-in-one: the node is the external network's gateway; tenant traffic leaves by the
    # host's own routes (router tables have no default route, so lookups fall through to
    # the main table) and is masqueraded on whatever interface it leaves by.
    nat_to_host: bool = False


@dataclass
class HostPlan:
    node: str  # the node's name, used to make host-unique interface names
    networks: list[Network] = field(default_factory=list)
    ports: list[Port] = field(default_factory=list)
    security_groups: list[SecurityGroup] = field(default_factory=list)
    routers: list[Router] = field(default_factory=list)
    external: External | None = None
    metadata: dict[str, dict] = field(default_factory=dict)  # fixed ip -> instance metadata
    vtep_local: str | None = None  # this node's overlay address, the VXLAN source if given

    def to_json(self) -> str:
        """The plan as JSON (tuples become lists)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HostPlan:
        """A plan from to_json's output."""
        value = _build(cls, json.loads(text))
        assert isinstance(value, HostPlan)
        return value


def _build(kind: Any, value: Any) -> Any:
    # Rebuilds nested dataclasses and tuples from their JSON form, guided by the annotations.
    if value is None:
        return None
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        hints = typing.get_type_hints(kind)
        return kind(**{f.name: _build(hints[f.name], value[f.name])
                       for f in dataclasses.fields(kind) if f.name in value})
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):
        return _build(next(a for a in args if a is not type(None)), value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], item) for item in value)
        return tuple(_build(a, item) for a, item in zip(args, value, strict=True))
    if origin is list:
        return [_build(args[0], item) for item in value]
    return value
