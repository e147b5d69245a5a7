"""OS::Neutron:: types, made through atwill's network API as the stack's owner."""

from __future__ import annotations

from typing import Any

from ..services import Api
from .base import Made, Prop, ResourceType, Scope

N = "/network/v2.0"
COMMON = ("name", "admin_state_up", "shared", "port_security_enabled", "description",
          "enable_dhcp", "gateway_ip", "cidr", "ip_version", "dns_nameservers",
          "allocation_pools", "host_routes", "direction", "ethertype", "port_range_min",
          "port_range_max", "protocol", "remote_ip_prefix", "mac_address", "device_id",
          "device_owner", "allowed_address_pairs", "fixed_ip_address", "floating_ip_address",
          "prefixlen", "tags")


class NeutronResource(ResourceType):
    plural = ""
    # Properties naming another object by name or id: property -> (API key, collection).
    refs: dict[str, tuple[str, str]] = {}

    async def body(self, api: Api, props: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in props.items() if k in COMMON}
        for prop, (key, plural) in self.refs.items():
            if props.get(prop) is not None:
                body[key] = (await api.find(plural, str(props[prop])))["id"]
        body.update(props.get("value_specs") or {})
        return body

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        body = await self.body(api, props)
        if "name" in self.properties and not body.get("name") and self.plural != "floatingips":
            body["name"] = f"{scope.stack_name}-{scope.resource_name}"
        made = (await api.post(f"{N}/{self.plural}", {self.plural[:-1]: body}))[self.plural[:-1]]
        return Made(made["id"], made)

    async def delete(self, api: Api, made: Made) -> None:
        await api.delete(f"{N}/{self.plural}/{made.physical_id}")

    async def update(self, api: Api, made: Made, props: dict[str, Any],
                     changed: set[str], scope: Scope) -> Made:
        body = {k: v for k, v in (await self.body(api, props)).items()
                if k in changed or k in (self.refs.get(c, ("",))[0] for c in changed)}
        if not body:
            return made
        got = await api.put(f"{N}/{self.plural}/{made.physical_id}", {self.plural[:-1]: body})
        return Made(made.physical_id, got[self.plural[:-1]])


def _props(*names: str, **typed: Prop) -> dict[str, Prop]:
    out = {n: Prop("string", update_allowed=True) for n in names}
    out.update(typed)
    return out


class Net(NeutronResource):
    name, plural = "OS::Neutron::Net", "networks"
    properties = _props("name", admin_state_up=Prop("boolean", default=True, update_allowed=True),
                        shared=Prop("boolean", update_allowed=True),
                        port_security_enabled=Prop("boolean", update_allowed=True),
                        value_specs=Prop("map", update_allowed=True),
                        tags=Prop("list", update_allowed=True),
                        tenant_id=Prop("string"), dns_domain=Prop("string"))
    attributes = {"name": "The name of the network.", "status": "The status of the network.",
                  "subnets": "Subnets of this network.", "admin_state_up": "Admin state.",
                  "tenant_id": "The tenant owning this network.", "mtu": "The MTU."}


class Subnet(NeutronResource):
    name, plural = "OS::Neutron::Subnet", "subnets"
    refs = {"network": ("network_id", "networks"), "network_id": ("network_id", "networks"),
            "subnetpool": ("subnetpool_id", "subnetpools")}
    properties = _props(
        "name", "gateway_ip", network=Prop("string"), network_id=Prop("string"),
        cidr=Prop("string"), ip_version=Prop("integer", default=4, allowed=(4, 6)),
        enable_dhcp=Prop("boolean", default=True, update_allowed=True),
        dns_nameservers=Prop("list", update_allowed=True),
        allocation_pools=Prop("list", update_allowed=True),
        host_routes=Prop("list", update_allowed=True), subnetpool=Prop("string"),
        prefixlen=Prop("integer"), value_specs=Prop("map", update_allowed=True),
        tags=Prop("list", update_allowed=True), tenant_id=Prop("string"))
    attributes = {k: k for k in ("name", "network_id", "tenant_id", "allocation_pools",
                                 "gateway_ip", "host_routes", "ip_version", "cidr",
                                 "dns_nameservers", "enable_dhcp")}


class Router(NeutronResource):
    name, plural = "OS::Neutron::Router", "routers"
    properties = _props("name", admin_state_up=Prop("boolean", default=True,
                                                    update_allowed=True),
                        external_gateway_info=Prop("map", update_allowed=True),
                        value_specs=Prop("map", update_allowed=True),
                        distributed=Prop("boolean"), ha=Prop("boolean"))
    attributes = {k: k for k in ("status", "external_gateway_info", "name", "admin_state_up",
                                 "tenant_id")}

    async def body(self, api: Api, props: dict[str, Any]) -> dict[str, Any]:
        body = await super().body(api, props)
        gateway = props.get("external_gateway_info")
        if gateway:
            info = {"network_id": (await api.find("networks", str(gateway["network"])))["id"]}
            if gateway.get("enable_snat") is not None:
                info["enable_snat"] = gateway["enable_snat"]
            body["external_gateway_info"] = info
        return body


class RouterInterface(ResourceType):
    name = "OS::Neutron::RouterInterface"
    properties = {"router": Prop("string", required=True), "subnet": Prop("string"),
                  "port": Prop("string")}

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        router = (await api.find("routers", str(props["router"])))["id"]
        if props.get("port"):
            key, value = "port_id", (await api.find("ports", str(props["port"])))["id"]
        else:
            key, value = "subnet_id", (await api.find("subnets", str(props["subnet"])))["id"]
        await api.put(f"{N}/routers/{router}/add_router_interface", {key: value})
        return Made(f"{router}:{key}={value}", {"router_id": router, key: value})

    async def delete(self, api: Api, made: Made) -> None:
        router = made.data["router_id"]
        body = {k: v for k, v in made.data.items() if k in ("subnet_id", "port_id")}
        await api.call("PUT", f"{N}/routers/{router}/remove_router_interface", body,
                       ok_missing=True)


class Port(NeutronResource):
    name, plural = "OS::Neutron::Port", "ports"
    refs = {"network": ("network_id", "networks")}
    properties = _props("name", "mac_address", "device_id", "device_owner",
                        network=Prop("string", required=True),
                        fixed_ips=Prop("list", update_allowed=True),
                        security_groups=Prop("list", update_allowed=True),
                        admin_state_up=Prop("boolean", default=True, update_allowed=True),
                        allowed_address_pairs=Prop("list", update_allowed=True),
                        port_security_enabled=Prop("boolean", update_allowed=True),
                        value_specs=Prop("map", update_allowed=True),
                        tags=Prop("list", update_allowed=True))
    attributes = {k: k for k in ("fixed_ips", "mac_address", "name", "network_id",
                                 "security_groups", "status", "device_id", "tenant_id",
                                 "admin_state_up", "subnets")}

    async def body(self, api: Api, props: dict[str, Any]) -> dict[str, Any]:
        body = await super().body(api, props)
        if props.get("fixed_ips") is not None:
            body["fixed_ips"] = [await _fixed_ip(api, ip) for ip in props["fixed_ips"]]
        if props.get("security_groups") is not None:
            body["security_groups"] = [(await api.find("security-groups", str(g)))["id"]
                                       for g in props["security_groups"]]
        return body


async def _fixed_ip(api: Api, spec: dict[str, Any]) -> dict[str, Any]:
    out = {}
    subnet = spec.get("subnet") or spec.get("subnet_id")
    if subnet:
        out["subnet_id"] = (await api.find("subnets", str(subnet)))["id"]
    if spec.get("ip_address"):
        out["ip_address"] = spec["ip_address"]
    return out


class SecurityGroup(NeutronResource):
    name, plural = "OS::Neutron::SecurityGroup", "security-groups"
    properties = _props("name", "description", rules=Prop("list", default=[]))
    attributes = {"name": "name", "description": "description", "rules": "rules"}

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        body = {"name": props.get("name") or f"{scope.stack_name}-{scope.resource_name}",
                "description": props.get("description", "")}
        group = (await api.post(f"{N}/security-groups", {"security_group": body}))[
            "security_group"]
        rules = props.get("rules") or []
        # As Heat: rules that say egress replace the default allow-all egress rules.
        if any(r.get("direction") == "egress" for r in rules):
            for rule in group.get("security_group_rules", []):
                if rule["direction"] == "egress":
                    await api.delete(f"{N}/security-group-rules/{rule['id']}")
        for rule in rules:
            await api.post(f"{N}/security-group-rules", {"security_group_rule": {
                **_rule(rule), "security_group_id": group["id"]}})
        return Made(group["id"], {**group, "rules": rules})

    async def delete(self, api: Api, made: Made) -> None:
        await api.delete(f"{N}/security-groups/{made.physical_id}")


def _rule(rule: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in rule.items() if k in (
        "direction", "ethertype", "port_range_min", "port_range_max", "protocol",
        "remote_ip_prefix", "remote_group_id", "description")}
    body.setdefault("direction", "ingress")
    body.setdefault("ethertype", "IPv4")
    return body


class SecurityGroupRule(NeutronResource):
    name, plural = "OS::Neutron::SecurityGroupRule", "security-group-rules"
    refs = {"security_group": ("security_group_id", "security-groups"),
            "remote_group": ("remote_group_id", "security-groups")}
    properties = {"security_group": Prop("string", required=True),
                  "direction": Prop("string", default="ingress",
                                    allowed=("ingress", "egress")),
                  "ethertype": Prop("string", default="IPv4", allowed=("IPv4", "IPv6")),
                  "port_range_min": Prop("integer"), "port_range_max": Prop("integer"),
                  "protocol": Prop("string"), "remote_ip_prefix": Prop("string"),
                  "remote_group": Prop("string"), "description": Prop("string")}

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        body = await self.body(api, props)
        made = (await api.post(f"{N}/security-group-rules", {"security_group_rule": body}))[
            "security_group_rule"]
        return Made(made["id"], made)


class FloatingIP(NeutronResource):
    name, plural = "OS::Neutron::FloatingIP", "floatingips"
    refs = {"floating_network": ("floating_network_id", "networks"),
            "port_id": ("port_id", "ports")}
    properties = {"floating_network": Prop("string", required=True),
                  "port_id": Prop("string", update_allowed=True),
                  "fixed_ip_address": Prop("string", update_allowed=True),
                  "floating_ip_address": Prop("string"), "value_specs": Prop("map")}
    attributes = {k: k for k in ("floating_ip_address", "floating_network_id", "port_id",
                                 "fixed_ip_address", "router_id", "tenant_id")}


class FloatingIPAssociation(ResourceType):
    name = "OS::Neutron::FloatingIPAssociation"
    properties = {"floatingip_id": Prop("string", required=True),
                  "port_id": Prop("string", required=True),
                  "fixed_ip_address": Prop("string")}

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        fip = str(props["floatingip_id"])
        body = {"port_id": (await api.find("ports", str(props["port_id"])))["id"]}
        if props.get("fixed_ip_address"):
            body["fixed_ip_address"] = props["fixed_ip_address"]
        await api.put(f"{N}/floatingips/{fip}", {"floatingip": body})
        return Made(f"{fip}:{body['port_id']}", {"floatingip_id": fip, **body})

    async def delete(self, api: Api, made: Made) -> None:
        await api.call("PUT", f"{N}/floatingips/{made.data['floatingip_id']}",
                       {"floatingip": {"port_id": None}}, ok_missing=True)


NEUTRON_TYPES = (Net(), Subnet(), Router(), RouterInterface(), Port(), SecurityGroup(),
                 SecurityGroupRule(), FloatingIP(), FloatingIPAssociation())
