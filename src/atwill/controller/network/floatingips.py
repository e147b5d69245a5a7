"""/v2.0/floatingips: addresses from an external network, associated with ports."""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import addresses
from ...core.errors import BadRequest, Conflict, NotFound
from ...core.policy import Credentials
from ...core.text import shown
from ..db.network import FloatingIP, IPAllocation, Network, Port, Router
from ..service import caller, controller, json_body, wrapped
from . import access, ports, quota, views
from .common import fault, one, owner, text, transaction, writable
from .routers import INTERFACE
from .sql_listing import sql_listing

router = APIRouter()
UPDATE = {"port_id", "fixed_ip_address", "description"}
CREATE = UPDATE | {"floating_network_id", "floating_ip_address", "subnet_id", "project_id",
                   "tenant_id", "tags", "dns_name", "dns_domain", "qos_policy_id"}


@router.get("/v2.0/floatingips")
def floatingips_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_floatingip", None)
    with controller(request).db.session() as session:
        return sql_listing(request, session, "floatingips", access.query(creds, FloatingIP),
                           FloatingIP, lambda s, rows: [views.floating_ip(f) for f in rows])


@router.get("/v2.0/floatingips/{fip_id}")
def floatingip_get(fip_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_floatingip", None)
    with controller(request).db.session() as session:
        fip = access.find(session, creds, FloatingIP, fip_id)
        return one(request, "floatingip", views.floating_ip(fip))


@router.post("/v2.0/floatingips")
def floatingips_post(request: Request, body: dict = Depends(json_body),
                     creds: Credentials = Depends(caller)) -> JSONResponse:
    data = writable(wrapped(body, "floatingip"), CREATE, "floatingip")
    project = owner(data, creds.project_id)
    access.check(creds, "network:create_floatingip", project)
    network_id = data.get("floating_network_id")
    if not isinstance(network_id, str):
        raise BadRequest("Invalid input: 'floating_network_id' is required.")
    wanted = {k: data[k] for k in ("subnet_id", "floating_ip_address")
              if data.get(k) is not None}
    if "floating_ip_address" in wanted:
        address = addresses.ip_field(wanted.pop("floating_ip_address"), "floating_ip_address")
        wanted["ip_address"] = str(address)
    if not isinstance(wanted.get("subnet_id", ""), str):
        raise BadRequest(f"Invalid input for subnet_id. Reason: {shown(data['subnet_id'])} "
                         "is not a string.")
    fixed_ip = _fixed_ip_address(data)

    def work(session: Session) -> dict[str, Any]:
        network = access.find(session, creds, Network, network_id)
        if not network.external:
            raise BadRequest(f"Bad floatingip request: Network {network_id} is not a valid "
                             "external network.")
        quota.enforce(session, project, "floatingip")
        fip = FloatingIP(project_id=project, floating_network_id=network.id,
                         description=text(data, "description"))
        port = ports.create(session, network, "", {"device_owner": "network:floatingip",
                                                   "status": "ACTIVE"},
                            [wanted] if wanted else None)
        v4 = [a for a in port.fixed_ips if ipaddress.ip_address(a.ip_address).version == 4]
        if not v4:
            raise BadRequest(f"Bad floatingip request: Network {network_id} has no IPv4 "
                             "subnet.")
        fip.floating_port_id, fip.floating_ip_address = port.id, v4[0].ip_address
        session.add(fip)
        session.flush()
        port.device_id = fip.id
        if data.get("port_id"):
            associate(session, creds, fip, data["port_id"], fixed_ip)
        return views.floating_ip(fip)
    return JSONResponse({"floatingip": transaction(request, work)}, status_code=201)


@router.put("/v2.0/floatingips/{fip_id}")
def floatingip_put(fip_id: str, request: Request, body: dict = Depends(json_body),
                   creds: Credentials = Depends(caller)) -> dict:
    data = writable(wrapped(body, "floatingip"), UPDATE, "floatingip")
    fixed_ip = _fixed_ip_address(data)

    def work(session: Session) -> dict[str, Any]:
        fip = access.find(session, creds, FloatingIP, fip_id, lock=True)
        access.may_write(creds, "network:update_floatingip", fip)
        if "description" in data:
            fip.description = text(data, "description")
        if "port_id" in data:
            if data["port_id"] is None:
                fip.port_id = fip.fixed_ip_address = fip.router_id = None
            else:
                associate(session, creds, fip, data["port_id"], fixed_ip)
        fip.touch()
        session.flush()
        return views.floating_ip(fip)
    return {"floatingip": transaction(request, work)}


@router.delete("/v2.0/floatingips/{fip_id}")
def floatingip_delete(fip_id: str, request: Request,
                      creds: Credentials = Depends(caller)) -> Response:
    def work(session: Session) -> None:
        fip = access.find(session, creds, FloatingIP, fip_id, lock=True)
        access.may_write(creds, "network:delete_floatingip", fip)
        port = session.get(Port, fip.floating_port_id)
        session.delete(fip)
        session.flush()
        if port is not None:
            session.delete(port)
    transaction(request, work)
    return Response(status_code=204)


def _fixed_ip_address(data: dict[str, Any]) -> str | None:
    """fixed_ip_address: a plain address, and only with the port it belongs to."""
    if data.get("fixed_ip_address") is None:
        return None
    address = addresses.ip_field(data["fixed_ip_address"], "fixed_ip_address")
    if not data.get("port_id"):
        raise BadRequest("Invalid input for operation: fixed_ip_address cannot be specified "
                         "without a port_id.")
    return str(address)


def associate(session: Session, creds: Credentials, fip: FloatingIP, port_id: Any,
              fixed_ip: Any) -> None:
    """Bind the floating IP to a port's fixed IP, through a router that has a gateway on
    the floating IP's network and an interface on the port's subnet."""
    if not isinstance(port_id, str) or (fixed_ip is not None and not isinstance(fixed_ip, str)):
        raise BadRequest("Invalid input for port_id or fixed_ip_address.")
    port = access.find(session, creds, Port, port_id)
    if port.project_id != fip.project_id and not creds.is_admin:
        raise fault(NotFound, "PortNotFound", f"Port {port_id} could not be found.")
    chosen = _fixed_ip(port, fixed_ip)
    clash = session.scalar(select(FloatingIP).where(
        FloatingIP.port_id == port.id, FloatingIP.fixed_ip_address == chosen.ip_address,
        FloatingIP.id != fip.id))
    if clash is not None:
        raise fault(Conflict, "FloatingIPPortAlreadyAssociated", f"Cannot associate floating "
                    f"IP {fip.floating_ip_address} ({fip.id}) with port {port_id} using fixed "
                    f"IP {chosen.ip_address}, as that fixed IP already has a floating IP on "
                    f"external network {clash.floating_network_id}.")
    fip.router_id = _router_for(session, fip, port, chosen.subnet_id)
    fip.port_id, fip.fixed_ip_address = port.id, chosen.ip_address


def _fixed_ip(port: Port, fixed_ip: str | None) -> IPAllocation:
    for alloc in port.fixed_ips:
        if fixed_ip is None and ipaddress.ip_address(alloc.ip_address).version == 4:
            return alloc
        if fixed_ip is not None and alloc.ip_address == fixed_ip:
            return alloc
    if fixed_ip is not None:
        raise BadRequest(f"Bad floatingip request: Port {port.id} does not have fixed ip "
                         f"{fixed_ip}.")
    raise BadRequest(f"Bad floatingip request: Port {port.id} does not have any IPv4 "
                     "address.")


def _router_for(session: Session, fip: FloatingIP, port: Port, subnet_id: str) -> str:
    interfaces = select(Port.device_id).where(
        Port.device_owner == INTERFACE,
        Port.id.in_(select(IPAllocation.port_id).where(IPAllocation.subnet_id == subnet_id)))
    gateway_ports = select(Port.id).where(Port.network_id == fip.floating_network_id)
    found = session.scalar(select(Router.id).where(Router.id.in_(interfaces),
                                                   Router.gw_port_id.in_(gateway_ports)))
    if found is None:
        raise fault(NotFound, "ExternalGatewayForFloatingIPNotFound",
                    f"External network {fip.floating_network_id} is not reachable from "
                    f"subnet {subnet_id}.  Therefore, cannot associate Port {port.id} with a "
                    "Floating IP.")
    return found
