"""add_router_interface / remove_router_interface, by subnet or by port (unwrapped)."""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, Conflict, NotFound
from ...core.policy import Credentials
from ..db.network import FloatingIP, IPAllocation, Network, Port, Router, Subnet
from ..service import caller, json_body
from . import access, ports
from .common import fault, transaction
from .routers import INTERFACE, connected

router = APIRouter()


@router.put("/v2.0/routers/{router_id}/add_router_interface")
def interface_add(router_id: str, request: Request, body: dict = Depends(json_body),
                  creds: Credentials = Depends(caller)) -> dict:
    subnet_id, port_id = _which(body)

    def work(session: Session) -> dict[str, Any]:
        item = access.find(session, creds, Router, router_id, lock=True)
        access.may_write(creds, "network:add_router_interface", item)
        if subnet_id is not None:
            port = port_for_subnet(session, creds, item, subnet_id)
        else:
            port = _adopt(session, creds, item, port_id or "")
        item.touch()
        return _answer(item, port)
    return transaction(request, work)


@router.put("/v2.0/routers/{router_id}/remove_router_interface")
def interface_remove(router_id: str, request: Request, body: dict = Depends(json_body),
                     creds: Credentials = Depends(caller)) -> dict:
    subnet_id, port_id = _which(body, removing=True)

    def work(session: Session) -> dict[str, Any]:
        item = access.find(session, creds, Router, router_id, lock=True)
        access.may_write(creds, "network:remove_router_interface", item)
        port = _interface(session, item, subnet_id, port_id)
        answer = _answer(item, port)
        for subnet in answer["subnet_ids"]:
            _check_floating_ips(session, item, subnet)
        ports.release(session, port)
        item.touch()
        return answer
    return transaction(request, work)


def _which(body: dict[str, Any], removing: bool = False) -> tuple[str | None, str | None]:
    subnet_id, port_id = body.get("subnet_id"), body.get("port_id")
    if set(body) - {"subnet_id", "port_id"} or not (subnet_id or port_id) or \
            (subnet_id and port_id and not removing):
        raise BadRequest("Bad router request: Either subnet_id or port_id must be "
                         "specified (and not both).")
    for value in (subnet_id, port_id):
        if value is not None and not isinstance(value, str):
            raise BadRequest("Bad router request: ids must be strings.")
    return subnet_id, port_id


def _check_overlap(session: Session, item: Router, cidrs: list[str]) -> None:
    existing = connected(session, item)
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr)
        if any(net.overlaps(other) for other in existing if other.version == net.version):
            raise BadRequest(f"Bad router request: Cidr {cidr} of subnet overlaps with cidr "
                             f"of a subnet already attached to router {item.id}.")


def port_for_subnet(session: Session, creds: Credentials, item: Router,
                     subnet_id: str) -> Port:
    """A new interface port taking the subnet's gateway address."""
    subnet = access.find(session, creds, Subnet, subnet_id)
    if not subnet.gateway_ip:
        raise BadRequest(f"Bad router request: Subnet {subnet_id} does not have a gateway "
                         "IP.")
    if subnet.network.external:
        raise BadRequest("Bad router request: an external network's subnet can only be a "
                         "gateway.")
    _check_overlap(session, item, [subnet.cidr])
    network = session.get(Network, subnet.network_id)
    assert network is not None
    return ports.create(session, network, item.project_id, {
        "device_owner": INTERFACE, "device_id": item.id, "status": "ACTIVE"},
        [{"subnet_id": subnet.id, "ip_address": subnet.gateway_ip}], router_port=True)


def _adopt(session: Session, creds: Credentials, item: Router, port_id: str) -> Port:
    """An existing port of the caller's becomes an interface."""
    port = access.find(session, creds, Port, port_id, lock=True)
    if port.device_id or port.device_owner:
        raise fault(Conflict, "PortInUse", f"Unable to complete operation on port {port_id} "
                    f"for network {port.network_id}. Port already has an attached device "
                    f"{port.device_id}.")
    if not port.fixed_ips:
        raise BadRequest(f"Bad router request: Router port must have at least one fixed IP "
                         f"(port {port_id} has none).")
    _check_overlap(session, item, [session.get(Subnet, a.subnet_id).cidr  # type: ignore
                                   for a in port.fixed_ips])
    port.device_owner, port.device_id, port.status = INTERFACE, item.id, "ACTIVE"
    port.groups = []
    port.touch()
    return port


def _interface(session: Session, item: Router, subnet_id: str | None,
               port_id: str | None) -> Port:
    stmt = select(Port).where(Port.device_id == item.id, Port.device_owner == INTERFACE)
    if port_id is not None:
        stmt = stmt.where(Port.id == port_id)
    if subnet_id is not None:
        stmt = stmt.where(Port.id.in_(select(IPAllocation.port_id).where(
            IPAllocation.subnet_id == subnet_id)))
    port = session.scalar(stmt)
    if port is None:
        what = f"subnet {subnet_id}" if subnet_id else f"port {port_id}"
        raise fault(NotFound, "RouterInterfaceNotFound", f"Router {item.id} does not have an "
                    f"interface with {what}.")
    return port


def _check_floating_ips(session: Session, item: Router, subnet_id: str) -> None:
    in_subnet = select(IPAllocation.port_id).where(IPAllocation.subnet_id == subnet_id)
    if session.scalar(select(exists().where(FloatingIP.router_id == item.id,
                                            FloatingIP.port_id.in_(in_subnet)))):
        raise fault(Conflict, "RouterInterfaceInUseByFloatingIP", f"Router interface for "
                    f"subnet {subnet_id} on router {item.id} cannot be deleted, as it is "
                    "required by one or more floating IPs.")


def _answer(item: Router, port: Port) -> dict[str, Any]:
    subnets = [a.subnet_id for a in port.fixed_ips]
    return {"id": item.id, "tenant_id": item.project_id, "project_id": item.project_id,
            "port_id": port.id, "network_id": port.network_id,
            "subnet_id": subnets[0] if subnets else None, "subnet_ids": subnets}
