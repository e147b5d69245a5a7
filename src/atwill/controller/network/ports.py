"""/v2.0/ports: addresses, MAC, device, binding, security groups and address pairs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from ...core import l2
from ...core.errors import BadRequest, Conflict
from ...core.policy import Credentials
from ..db.network import FloatingIP, Network, Port, PortSecurityGroup
from ..service import caller, controller, json_body, wrapped
from . import access, bulk, ipalloc, portattrs, status, views
from .common import fault, one, owner, transaction, writable
from .sgdefault import ensure_default, groups_for
from .sql_listing import sql_listing

router = APIRouter()
UPDATE = {"name", "description", "admin_state_up", "fixed_ips", "device_owner", "device_id",
          "binding:host_id", "binding:profile", "binding:vnic_type", "security_groups",
          "port_security_enabled", "allowed_address_pairs", "mac_address", "extra_dhcp_opts"}
CREATE = UPDATE | {"network_id", "project_id", "tenant_id", "tags"}
SYSTEM_OWNERS = ("network:router_interface", "network:router_gateway", "network:floatingip")


@router.get("/v2.0/ports")
def ports_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_port", None)
    with controller(request).db.session() as session:
        return sql_listing(request, session, "ports", access.query(creds, Port), Port,
                           lambda s, rows: status.views(s, rows, creds.is_admin),
                           computed=("status",))


@router.get("/v2.0/ports/{port_id}")
def port_get(port_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_port", None)
    with controller(request).db.session() as session:
        port = access.find(session, creds, Port, port_id)
        return one(request, "port", status.views(session, [port], creds.is_admin)[0])


@router.post("/v2.0/ports")
def ports_post(request: Request, body: dict = Depends(json_body),
               creds: Credentials = Depends(caller)) -> JSONResponse:
    many, items = bulk.items(body, "port", "ports")
    plans = [_plan(creds, item) for item in items]

    def work(session: Session) -> list[dict[str, Any]]:
        bulk.enforce_quota(session, (plan[1] for plan in plans), "port")
        made = []
        for network_id, project, attrs, wanted in plans:
            network = access.find(session, creds, Network, network_id, lock=True)
            portattrs.check_network_owner(creds, network, attrs, wanted, "create_port")
            port = create(session, network, project, attrs, wanted)
            made.append(views.port(port, creds.is_admin))
        return made
    return bulk.respond(transaction(request, work), many, "port", "ports")


def _plan(creds: Credentials, item: dict[str, Any]) -> tuple[str, str, dict, Any]:
    """One port's network, owner, checked attributes and fixed IP requests."""
    data = writable(item, CREATE, "port")
    project = owner(data, creds.project_id)
    access.check(creds, "network:create_port", project)
    attrs = portattrs.parse(creds, data)
    wanted = ipalloc.requests(data.get("fixed_ips"))
    network_id = data.get("network_id")
    if not isinstance(network_id, str):
        raise BadRequest("Invalid input: 'network_id' is required.")
    return network_id, project, attrs, wanted


def create(session: Session, network: Network, project: str, attrs: dict[str, Any],
           wanted: list[dict[str, str]] | None, router_port: bool = False) -> Port:
    """A port on network with its MAC, addresses and security groups (also used by
    routers and floating IPs for the ports they own)."""
    attrs = dict(attrs)
    groups = attrs.pop("security_groups", None)
    secure = attrs.setdefault("port_security_enabled", network.port_security_enabled)
    mac = attrs.pop("mac_address", None) or l2.random_mac()
    _check_mac(session, network.id, mac)
    port = Port(network_id=network.id, project_id=project, mac_address=mac, **attrs)
    session.add(port)
    session.flush()
    ipalloc.assign(session, network, port, wanted, router_port)
    system = port.device_owner.startswith("network:")
    _set_groups(session, port, groups, secure and not system)
    portattrs.check_pairs(port)
    session.flush()
    return port


@router.put("/v2.0/ports/{port_id}")
def port_put(port_id: str, request: Request, body: dict = Depends(json_body),
             creds: Credentials = Depends(caller)) -> dict:
    data = writable(wrapped(body, "port"), UPDATE, "port")
    attrs = portattrs.parse(creds, data)
    wanted = ipalloc.requests(data.get("fixed_ips"))

    def work(session: Session) -> dict[str, Any]:
        port = access.find(session, creds, Port, port_id, lock=True)
        access.may_write(creds, "network:update_port", port)
        network = session.get(Network, port.network_id)
        assert network is not None
        portattrs.check_network_owner(creds, network, attrs, wanted, "update_port", port)
        groups = attrs.pop("security_groups", None)
        if "mac_address" in attrs and attrs["mac_address"] != port.mac_address:
            _check_mac(session, port.network_id, attrs["mac_address"])
        for key, value in attrs.items():
            setattr(port, key, value)
        if "fixed_ips" in data:
            ipalloc.assign(session, network, port, wanted or [],
                           port.device_owner.startswith("network:router"))
        if groups is not None or "port_security_enabled" in attrs:
            current = [g.security_group_id for g in port.groups]
            _set_groups(session, port, groups if groups is not None else current,
                        port.port_security_enabled, update=True)
        portattrs.check_pairs(port)
        port.touch()
        session.flush()
        return status.views(session, [port], creds.is_admin)[0]
    return {"port": transaction(request, work)}


@router.delete("/v2.0/ports/{port_id}")
def port_delete(port_id: str, request: Request,
                creds: Credentials = Depends(caller)) -> Response:
    def work(session: Session) -> None:
        port = access.find(session, creds, Port, port_id, lock=True)
        access.may_write(creds, "network:delete_port", port)
        if port.device_owner in SYSTEM_OWNERS:
            raise fault(Conflict, "ServicePortInUse", f"Port {port_id} cannot be deleted "
                        f"directly via the port API: has device owner {port.device_owner}.")
        release(session, port)
    transaction(request, work)
    return Response(status_code=204)


def release(session: Session, port: Port) -> None:
    """Delete a port, first disassociating floating IPs from it as Neutron does."""
    session.execute(update(FloatingIP).where(FloatingIP.port_id == port.id).values(
        port_id=None, fixed_ip_address=None, router_id=None))
    session.delete(port)
    session.flush()


def _check_mac(session: Session, network_id: str, mac: str) -> None:
    if session.scalar(select(exists().where(Port.network_id == network_id,
                                            Port.mac_address == mac))):
        raise fault(Conflict, "MacAddressInUse", f"Unable to complete operation for network "
                    f"{network_id}. The mac address {mac} is in use.")


def _set_groups(session: Session, port: Port, groups: list[str] | None, secure: bool,
                update: bool = False) -> None:
    """Groups as asked; the project's default when none are named; none without
    port security (naming some then is a 409, as in Neutron)."""
    if not secure:
        if groups:
            raise fault(Conflict, "PortSecurityAndIPRequiredForSecurityGroups",
                        "Port security must be enabled and port must have an IP address in "
                        "order to use security groups.")
        port.groups = []
        return
    if groups is None:
        default = ensure_default(session, port.project_id)
        groups = [default.id] if default is not None else []
    ids = groups_for(session, port.project_id, groups)
    kept = [g for g in port.groups if g.security_group_id in ids]
    have = {g.security_group_id for g in kept}
    port.groups = kept + [PortSecurityGroup(port_id=port.id, security_group_id=g)
                          for g in ids if g not in have]
