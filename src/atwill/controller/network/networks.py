"""/v2.0/networks: tenant (VXLAN) and provider (flat) networks, shared and external."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ...core import l2
from ...core.errors import BadRequest, Conflict
from ...core.policy import Credentials
from ..db.network import Network, Port, Router
from ..service import caller, controller, json_body, wrapped
from . import access, bulk, tags, views
from .common import fault, flag, one, owner, text, transaction, writable
from .sql_listing import sql_listing

router = APIRouter()
UPDATE = {"name", "description", "admin_state_up", "shared", "router:external",
          "port_security_enabled", "mtu", "availability_zone_hints", "is_default"}
PROVIDER = {"provider:network_type", "provider:physical_network", "provider:segmentation_id"}
CREATE = UPDATE | PROVIDER | {"project_id", "tenant_id", "tags"}
TYPES = ("vxlan", "flat")
IN_USE_OWNERS = ("network:router_interface", "network:router_gateway", "network:floatingip")


@router.get("/v2.0/networks")
def networks_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_network", None)
    with controller(request).db.session() as session:
        return sql_listing(request, session, "networks", access.query(creds, Network), Network,
                           lambda s, rows: [views.network(n) for n in rows])


@router.get("/v2.0/networks/{network_id}")
def network_get(network_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_network", None)
    with controller(request).db.session() as session:
        found = access.find(session, creds, Network, network_id)
        return one(request, "network", views.network(found))


@router.post("/v2.0/networks")
def networks_post(request: Request, body: dict = Depends(json_body),
                  creds: Credentials = Depends(caller)) -> JSONResponse:
    many, items = bulk.items(body, "network", "networks")
    plans = [_plan(creds, item) for item in items]
    underlay = getattr(controller(request).settings, "underlay_mtu", l2.UNDERLAY_MTU)

    def work(session: Session) -> list[dict[str, Any]]:
        bulk.enforce_quota(session, (project for project, _, _ in plans), "network")
        made = []
        for project, data, attrs in plans:
            network = Network(project_id=project, name=text(data, "name"),
                              tags=tags.tag_list(data.get("tags") or []), **attrs,
                              **segment(session, data, underlay))
            session.add(network)
            session.flush()
            made.append(views.network(network))
        return made
    return bulk.respond(transaction(request, work), many, "network", "networks")


def _plan(creds: Credentials, item: dict[str, Any]) -> tuple[str, dict, dict]:
    """One network's owner, body and checked attributes, before any write."""
    data = writable(item, CREATE, "network")
    project = owner(data, creds.project_id)
    access.check(creds, "network:create_network", project)
    attrs = _privileged(creds, data, _common(data))
    attrs.pop("mtu", None)  # segment() sets it, checked against the type's maximum
    return project, data, attrs


@router.put("/v2.0/networks/{network_id}")
def network_put(network_id: str, request: Request, body: dict = Depends(json_body),
                creds: Credentials = Depends(caller)) -> dict:
    data = writable(wrapped(body, "network"), UPDATE, "network")
    attrs = _privileged(creds, data, _common(data))

    def work(session: Session) -> dict[str, Any]:
        network = access.find(session, creds, Network, network_id, lock=True)
        access.may_write(creds, "network:update_network", network)
        if attrs.get("mtu", 0) > network.mtu:
            raise BadRequest(f"Requested MTU is too big, maximum is {network.mtu}.")
        if attrs.get("external") is False and network.external and _gateways(session, network):
            raise fault(Conflict, "NetworkInUse", f"Unable to complete operation on network "
                        f"{network_id}. Routers still use it as their external gateway.")
        for key, value in attrs.items():
            setattr(network, key, value)
        if "name" in data:
            network.name = text(data, "name")
        network.touch()
        return views.network(network)
    return {"network": transaction(request, work)}


@router.delete("/v2.0/networks/{network_id}")
def network_delete(network_id: str, request: Request,
                   creds: Credentials = Depends(caller)) -> Response:
    def work(session: Session) -> None:
        network = access.find(session, creds, Network, network_id, lock=True)
        access.may_write(creds, "network:delete_network", network)
        if session.scalar(select(exists().where(Port.network_id == network.id))):
            raise fault(Conflict, "NetworkInUse", f"Unable to complete operation on network "
                        f"{network_id}. There are one or more ports still in use on the "
                        "network.")
        session.delete(network)
    transaction(request, work)
    return Response(status_code=204)


def _common(data: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for key, column, default in (("admin_state_up", "admin_state_up", True),
                                 ("shared", "shared", False),
                                 ("router:external", "external", False),
                                 ("port_security_enabled", "port_security_enabled", True)):
        if key in data:
            attrs[column] = flag(data, key, default)
    if "description" in data:
        attrs["description"] = text(data, "description")
    if data.get("mtu") is not None:
        mtu = data["mtu"]
        if isinstance(mtu, bool) or not isinstance(mtu, int) or mtu < 68:
            raise BadRequest(f"Invalid input for mtu. Reason: '{mtu}' should be an integer "
                             ">= 68.")
        attrs["mtu"] = mtu
    return attrs


def _privileged(creds: Credentials, data: dict[str, Any], attrs: dict[str, Any]) -> dict:
    """Sharing, external and provider attributes are the administrator's."""
    if attrs.get("shared"):
        access.check(creds, "network:create_network:shared", None)
    if "external" in attrs:
        access.check(creds, "network:create_network:external", None)
    if PROVIDER & set(data):
        access.check(creds, "network:create_network:provider", None)
    return attrs


def segment(session: Session, data: dict[str, Any], underlay: int) -> dict[str, Any]:
    """Network type, VNI (lowest free unless given) or flat physical network, and MTU."""
    kind = data.get("provider:network_type") or "vxlan"
    physnet = data.get("provider:physical_network")
    segment = data.get("provider:segmentation_id")
    if kind not in TYPES:
        raise BadRequest(f"Invalid input for operation: network_type value '{kind}' not "
                         f"supported (one of {', '.join(TYPES)}).")
    maximum = l2.tenant_mtu(underlay, kind)
    if (data.get("mtu") or 0) > maximum:
        raise BadRequest(f"Invalid input for operation: Requested MTU is too big, maximum "
                         f"is {maximum}.")
    out: dict[str, Any] = {"network_type": kind, "mtu": data.get("mtu") or maximum}
    if kind == "flat":
        if segment is not None or not isinstance(physnet, str) or not physnet:
            raise BadRequest("Invalid input for operation: a flat network needs "
                             "provider:physical_network and no provider:segmentation_id.")
        if session.scalar(select(exists().where(Network.physical_network == physnet))):
            raise fault(Conflict, "FlatNetworkInUse", f"Unable to create the flat network. "
                        f"Physical network {physnet} is in use.")
        return {**out, "physical_network": physnet}
    if physnet is not None:
        raise BadRequest("Invalid input for operation: provider:physical_network is "
                         "not allowed for vxlan networks.")
    return {**out, "segmentation_id": _vni(session, segment)}


def _vni(session: Session, wanted: Any) -> int:
    used = session.scalars(select(Network.segmentation_id).where(
        Network.segmentation_id.is_not(None)))
    if wanted is None:
        vni = l2.lowest_free_vni(used)
        if vni is None:
            raise fault(Conflict, "NoNetworkAvailable", "Unable to create the network. No "
                        "tenant network is available for allocation.")
        return vni
    if isinstance(wanted, bool) or not isinstance(wanted, int) or \
            not 1 <= wanted <= l2.VNI_RANGE[1]:
        raise BadRequest(f"Invalid input for operation: segmentation_id {wanted!r} out of "
                         f"range (1 through {l2.VNI_RANGE[1]}).")
    if wanted in set(used):
        raise fault(Conflict, "TunnelIdInUse", f"Unable to create the network. The tunnel ID "
                    f"{wanted} is in use.")
    return wanted


def _gateways(session: Session, network: Network) -> bool:
    return bool(session.scalar(select(exists().where(
        Router.gw_port_id == Port.id, Port.network_id == network.id))))
