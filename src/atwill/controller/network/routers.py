"""/v2.0/routers: create, show, update (gateway, SNAT, static routes), delete."""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ...core import addresses
from ...core.errors import BadRequest, Conflict
from ...core.policy import Credentials
from ...core.text import shown
from ..db.network import FloatingIP, Network, Port, Router
from ..service import caller, controller, json_body, wrapped
from . import access, ipalloc, ports, quota, views
from .common import fault, flag, one, owner, text, transaction, writable
from .sql_listing import sql_listing

router = APIRouter()
UPDATE = {"name", "description", "admin_state_up", "external_gateway_info", "routes",
          "distributed", "ha", "availability_zone_hints"}
CREATE = UPDATE | {"project_id", "tenant_id", "tags", "flavor_id"}
INTERFACE = "network:router_interface"
GATEWAY = "network:router_gateway"
# Neutron's max_routes default.
MAX_ROUTES = 30


@router.get("/v2.0/routers")
def routers_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_router", None)
    with controller(request).db.session() as session:
        return sql_listing(request, session, "routers", access.query(creds, Router), Router,
                           lambda s, rows: [views.router(r) for r in rows])


@router.get("/v2.0/routers/{router_id}")
def router_get(router_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_router", None)
    with controller(request).db.session() as session:
        return one(request, "router", views.router(access.find(session, creds, Router, router_id)))


@router.post("/v2.0/routers")
def routers_post(request: Request, body: dict = Depends(json_body),
                 creds: Credentials = Depends(caller)) -> JSONResponse:
    data = _check_flags(writable(wrapped(body, "router"), CREATE, "router"))
    project = owner(data, creds.project_id)
    access.check(creds, "network:create_router", project)

    def work(session: Session) -> dict[str, Any]:
        quota.enforce(session, project, "router")
        item = Router(project_id=project, name=text(data, "name"),
                      description=text(data, "description"),
                      admin_state_up=flag(data, "admin_state_up", True))
        session.add(item)
        session.flush()
        if data.get("external_gateway_info"):
            set_gateway(session, creds, item, data["external_gateway_info"])
        if data.get("routes"):
            item.routes = _routes(session, item, data["routes"])
        return views.router(item)
    return JSONResponse({"router": transaction(request, work)}, status_code=201)


@router.put("/v2.0/routers/{router_id}")
def router_put(router_id: str, request: Request, body: dict = Depends(json_body),
               creds: Credentials = Depends(caller)) -> dict:
    data = _check_flags(writable(wrapped(body, "router"), UPDATE, "router"))

    def work(session: Session) -> dict[str, Any]:
        item = access.find(session, creds, Router, router_id, lock=True)
        access.may_write(creds, "network:update_router", item)
        for key in ("name", "description"):
            if key in data:
                setattr(item, key, text(data, key))
        if "admin_state_up" in data:
            item.admin_state_up = flag(data, "admin_state_up", True)
        if "external_gateway_info" in data:
            set_gateway(session, creds, item, data["external_gateway_info"])
        if "routes" in data:
            item.routes = _routes(session, item, data["routes"])
        item.touch()
        session.flush()
        return views.router(item)
    return {"router": transaction(request, work)}


@router.delete("/v2.0/routers/{router_id}")
def router_delete(router_id: str, request: Request,
                  creds: Credentials = Depends(caller)) -> Response:
    def work(session: Session) -> None:
        item = access.find(session, creds, Router, router_id, lock=True)
        access.may_write(creds, "network:delete_router", item)
        if session.scalar(select(exists().where(Port.device_id == item.id,
                                                Port.device_owner == INTERFACE))):
            raise fault(Conflict, "RouterInUse", f"Router {router_id} still has ports")
        set_gateway(session, creds, item, None)
        session.delete(item)
    transaction(request, work)
    return Response(status_code=204)


def _check_flags(data: dict[str, Any]) -> dict[str, Any]:
    """Every atwill router is distributed and not HA; asking otherwise is refused."""
    if data.get("ha") or data.get("distributed") is False or data.get("flavor_id"):
        raise BadRequest("Routers are always distributed; ha, centralized and flavors are "
                         "not supported.")
    return data


def set_gateway(session: Session, creds: Credentials, item: Router, info: Any) -> None:
    """Point the router's gateway at an external network (a port there), or clear it."""
    if info is not None and not isinstance(info, dict):
        raise BadRequest("Invalid input for external_gateway_info: an object is required.")
    info = info or {}
    if set(info) - {"network_id", "enable_snat", "external_fixed_ips", "qos_policy_id"}:
        raise BadRequest("Invalid input for external_gateway_info: unknown keys.")
    network_id = info.get("network_id")
    old = item.gw_port
    if old is not None and network_id != old.network_id:
        _check_no_floating_ips(session, item, old.network_id)
        item.gw_port = None
        session.flush()
        session.delete(old)
        session.flush()
    if network_id is None:
        return
    item.enable_snat = flag(info, "enable_snat", True)
    wanted = ipalloc.requests(info.get("external_fixed_ips"))
    if wanted is not None:
        access.check(creds, "network:create_port:binding", None)
    if item.gw_port is None:
        network = access.find(session, creds, Network, network_id)
        if not network.external:
            raise BadRequest(f"Bad router request: Network {network_id} is not an external "
                             "network.")
        item.gw_port = ports.create(session, network, "", {
            "device_owner": GATEWAY, "device_id": item.id, "status": "ACTIVE"}, wanted)
    elif wanted is not None:
        ipalloc.assign(session, session.get(Network, network_id), item.gw_port, wanted)


def _check_no_floating_ips(session: Session, item: Router, network_id: str) -> None:
    if session.scalar(select(exists().where(FloatingIP.router_id == item.id,
                                            FloatingIP.floating_network_id == network_id))):
        raise fault(Conflict, "RouterExternalGatewayInUseByFloatingIp", f"Gateway cannot be "
                    f"updated for router {item.id}, since a gateway to external network "
                    f"{network_id} is required by one or more floating IPs.")


def connected(session: Session, item: Router) -> list[ipaddress.IPv4Network |
                                                       ipaddress.IPv6Network]:
    """The CIDRs of every subnet the router has a port on (interfaces and gateway)."""
    from ..db.network import Subnet

    owned = select(Port).where(Port.device_id == item.id,
                               Port.device_owner.in_((INTERFACE, GATEWAY)))
    nets = []
    for port in session.scalars(owned):
        for alloc in port.fixed_ips:
            subnet = session.get(Subnet, alloc.subnet_id)
            if subnet is not None:
                nets.append(ipaddress.ip_network(subnet.cidr))
    return nets


def _routes(session: Session, item: Router, raw: Any) -> list[dict[str, str]]:
    """Static routes whose next hop is on a subnet the router is connected to."""
    if not isinstance(raw, list):
        raise BadRequest("Invalid input for routes: a list is required.")
    if len(raw) > MAX_ROUTES:
        raise BadRequest(f"Unable to complete operation for {item.id}. The number of routes "
                         f"exceeds the maximum {MAX_ROUTES}.")
    nets, out = connected(session, item), []
    for route in raw:
        if not isinstance(route, dict) or set(route) != {"destination", "nexthop"}:
            raise BadRequest(f"Invalid format for routes: {shown(route)}, each route needs "
                             "exactly destination and nexthop.")
        destination = str(addresses.prefix_field(route["destination"], "routes destination",
                                                 need_length=True, strict=True))
        nexthop = addresses.ip_field(route["nexthop"], "routes nexthop")
        if not any(nexthop in net for net in nets):
            raise BadRequest(f"Invalid format for routes: {shown(route)}, the nexthop is not "
                             "connected with router.")
        entry = {"destination": destination, "nexthop": str(nexthop)}
        if entry not in out:
            out.append(entry)
    return out
