"""/v2.0/subnets: IPv4 and IPv6 CIDRs with gateway, pools, DNS servers and host routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ...core import ipam
from ...core.errors import BadRequest, Conflict, Forbidden
from ...core.policy import Credentials
from ..db.network import IPAllocation, Network, Subnet
from ..service import caller, controller, json_body, wrapped
from . import access, bulk, subnetalloc, tags, views
from .common import fault, flag, one, owner, string_list, text, transaction, writable
from .sql_listing import sql_listing

router = APIRouter()
UPDATE = {"name", "description", "gateway_ip", "allocation_pools", "dns_nameservers",
          "host_routes", "enable_dhcp"}
CREATE = UPDATE | {"network_id", "ip_version", "cidr", "project_id", "tenant_id",
                   "ipv6_ra_mode", "ipv6_address_mode", "subnetpool_id", "service_types",
                   "use_default_subnetpool", "segment_id", "tags", "prefixlen"}
V6_MODES = (None, "slaac", "dhcpv6-stateful", "dhcpv6-stateless")
# Neutron's max_dns_nameservers and max_subnet_host_routes defaults.
MAX_DNS, MAX_ROUTES = 5, 20


@router.get("/v2.0/subnets")
def subnets_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_subnet", None)
    with controller(request).db.session() as session:
        return sql_listing(request, session, "subnets", access.query(creds, Subnet), Subnet,
                           lambda s, rows: [views.subnet(n) for n in rows])


@router.get("/v2.0/subnets/{subnet_id}")
def subnet_get(subnet_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_subnet", None)
    with controller(request).db.session() as session:
        return one(request, "subnet", views.subnet(access.find(session, creds, Subnet, subnet_id)))


@router.post("/v2.0/subnets")
def subnets_post(request: Request, body: dict = Depends(json_body),
                 creds: Credentials = Depends(caller)) -> JSONResponse:
    many, items = bulk.items(body, "subnet", "subnets")
    plans = [_plan(creds, item) for item in items]

    def work(session: Session) -> list[dict[str, Any]]:
        bulk.enforce_quota(session, (project for project, _ in plans), "subnet")
        return [_create(session, creds, project, data) for project, data in plans]
    return bulk.respond(_guarded(request, work), many, "subnet", "subnets")


def _plan(creds: Credentials, item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    data = writable(item, CREATE, "subnet")
    project = owner(data, creds.project_id)
    access.check(creds, "network:create_subnet", project)
    if data.get("segment_id") or data.get("service_types"):
        raise BadRequest("Segments and service types are not supported.")
    _network_id(data)
    return project, data


def _create(session: Session, creds: Credentials, project: str,
            data: dict[str, Any]) -> dict[str, Any]:
    network = access.find(session, creds, Network, _network_id(data), lock=True)
    if network.project_id != project and not creds.is_admin:
        raise fault(Forbidden, "PolicyNotAuthorized", f"Project {project} is not allowed "
                    f"to create a subnet on network {network.id}, which it does not own.")
    pool = subnetalloc.pool_for(session, creds, data)
    if pool is not None:
        cidr = subnetalloc.carve(session, pool, data, project, network)
        data = {**data, "ip_version": pool.ip_version, "cidr": cidr}
    net, gateway, pools = _addressing(data)
    # Queried, not network.subnets: earlier subnets of the same bulk request count too.
    clash = ipam.overlapping(net, session.scalars(select(Subnet.cidr).where(
        Subnet.network_id == network.id)))
    if clash:
        raise BadRequest(f"Invalid input for operation: Requested subnet with cidr: {net} "
                         f"for network: {network.id} overlaps with another subnet "
                         f"({clash}).")
    subnet = Subnet(network_id=network.id, project_id=project, name=text(data, "name"),
                    description=text(data, "description"), ip_version=net.version,
                    cidr=str(net), gateway_ip=gateway and str(gateway),
                    allocation_pools=ipam.pools_api(pools), subnetpool_id=pool and pool.id,
                    tags=tags.tag_list(data.get("tags") or []), **_options(data, net))
    session.add(subnet)
    session.flush()
    network.touch()
    return views.subnet(subnet)


@router.put("/v2.0/subnets/{subnet_id}")
def subnet_put(subnet_id: str, request: Request, body: dict = Depends(json_body),
               creds: Credentials = Depends(caller)) -> dict:
    data = writable(wrapped(body, "subnet"), UPDATE, "subnet")

    def work(session: Session) -> dict[str, Any]:
        subnet = access.find(session, creds, Subnet, subnet_id, lock=True)
        access.may_write(creds, "network:update_subnet", subnet)
        net = ipam.parse_cidr(subnet.cidr)
        merged = {"gateway_ip": subnet.gateway_ip, "allocation_pools": subnet.allocation_pools,
                  "ip_version": subnet.ip_version, "cidr": subnet.cidr, **data}
        if "gateway_ip" in data and "allocation_pools" not in data:
            merged.pop("allocation_pools")  # recompute around the new gateway
        _, gateway, pools = _addressing(merged)
        for key, value in _options({**data, "ip_version": subnet.ip_version}, net,
                                   update=True).items():
            setattr(subnet, key, value)
        subnet.gateway_ip, subnet.allocation_pools = gateway and str(gateway), \
            ipam.pools_api(pools)
        for key in ("name", "description"):
            if key in data:
                setattr(subnet, key, text(data, key))
        subnet.touch()
        return views.subnet(subnet)
    return {"subnet": _guarded(request, work)}


@router.delete("/v2.0/subnets/{subnet_id}")
def subnet_delete(subnet_id: str, request: Request,
                  creds: Credentials = Depends(caller)) -> Response:
    def work(session: Session) -> None:
        subnet = access.find(session, creds, Subnet, subnet_id, lock=True)
        access.may_write(creds, "network:delete_subnet", subnet)
        if session.scalar(select(exists().where(IPAllocation.subnet_id == subnet.id))):
            raise fault(Conflict, "SubnetInUse", f"Unable to complete operation on subnet "
                        f"{subnet_id}: One or more ports have an IP allocation from this "
                        "subnet.")
        session.delete(subnet)
    transaction(request, work)
    return Response(status_code=204)


def _guarded(request: Request, work: Any) -> Any:
    try:
        return transaction(request, work)
    except ipam.InvalidSubnet as err:
        raise BadRequest(f"Invalid input for operation: {err}") from None


def _network_id(data: dict[str, Any]) -> str:
    network_id = data.get("network_id")
    if not isinstance(network_id, str) or not network_id:
        raise BadRequest("Invalid input: 'network_id' is required.")
    return network_id


def _addressing(data: dict[str, Any]) -> tuple[ipam.Net, ipam.Addr | None, list]:
    """CIDR, gateway (first host unless given or null) and pools (the rest unless given)."""
    version = data.get("ip_version", 4)
    if version not in (4, 6) or isinstance(version, bool):
        raise BadRequest(f"Invalid input for ip_version. Reason: '{version}' is not in "
                         "[4, 6].")
    try:
        net = ipam.parse_cidr(data.get("cidr"), version)
        if "gateway_ip" not in data:
            gateway = ipam.first_host(net)
        else:
            gateway = None if data["gateway_ip"] is None else \
                ipam.check_gateway(net, data["gateway_ip"])
        if data.get("allocation_pools") is None:
            return net, gateway, ipam.default_pools(net, gateway)
        return net, gateway, ipam.parse_pools(net, data["allocation_pools"], gateway)
    except ipam.InvalidSubnet as err:
        raise BadRequest(f"Invalid input for operation: {err}") from None


def _options(data: dict[str, Any], net: ipam.Net, update: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "dns_nameservers" in data or not update:
        servers = string_list(data, "dns_nameservers")
        if len(servers) > MAX_DNS:
            raise BadRequest(f"Unable to complete operation for subnet. The number of DNS "
                             f"nameservers exceeds the limit {MAX_DNS}.")
        for server in servers:
            _address(server, "dns_nameservers")
        if len(set(servers)) != len(servers):
            raise BadRequest("Invalid input for dns_nameservers: duplicate addresses.")
        out["dns_nameservers"] = servers
    if "host_routes" in data or not update:
        out["host_routes"] = _routes(data.get("host_routes") or [], net)
    if "enable_dhcp" in data or not update:
        out["enable_dhcp"] = flag(data, "enable_dhcp", True)
    if not update:
        for key in ("ipv6_ra_mode", "ipv6_address_mode"):
            if data.get(key) not in V6_MODES or (data.get(key) and net.version == 4):
                raise BadRequest(f"Invalid input for {key}: {data.get(key)!r}.")
            out[key] = data.get(key)
    return out


def _address(value: Any, what: str) -> ipam.Addr:
    try:
        return ipam.parse_address(value)
    except ipam.InvalidSubnet as err:
        raise BadRequest(f"Invalid input for {what}: {err}") from None


def _routes(routes: Any, net: ipam.Net) -> list[dict[str, str]]:
    if not isinstance(routes, list):
        raise BadRequest("Invalid input for host_routes: a list is required.")
    if len(routes) > MAX_ROUTES:
        raise BadRequest(f"Unable to complete operation for subnet. The number of host "
                         f"routes exceeds the limit {MAX_ROUTES}.")
    out = []
    for route in routes:
        if not isinstance(route, dict) or set(route) != {"destination", "nexthop"}:
            raise BadRequest("Invalid input for host_routes: each route needs exactly "
                             "destination and nexthop.")
        try:
            destination = ipam.parse_destination(route["destination"])
        except ipam.InvalidSubnet as err:
            raise BadRequest(f"Invalid input for host_routes: {err}") from None
        nexthop = _address(route["nexthop"], "host_routes nexthop")
        out.append({"destination": str(destination), "nexthop": str(nexthop)})
    return out
