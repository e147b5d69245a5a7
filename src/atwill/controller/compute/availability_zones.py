"""/os-availability-zone and /detail, derived from the compute nodes' zones (the detail
also shows the controllers in Nova's zone 'internal')."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from ...core.policy import Credentials
from ..db.base import iso
from ..db.compute import Node
from ..service import authorize, caller, controller
from .nodes import BINARY, all_nodes, controller_host, is_up, live_controllers, updated_at

router = APIRouter()


@router.get("/v2.1/os-availability-zone")
def availability_zones_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "compute:availability_zone:list")
    with controller(request).db.session() as session:
        zones = _zones(all_nodes(session))
    return {"availabilityZoneInfo": [
        {"zoneName": name, "zoneState": {"available": _available(nodes)}, "hosts": None}
        for name, nodes in zones.items()]}


@router.get("/v2.1/os-availability-zone/detail")
def availability_zones_detail_get(request: Request,
                                  creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "compute:availability_zone:detail")
    with controller(request).db.session() as session:
        zones = _zones(all_nodes(session))
        internal = _internal(session)
    return {"availabilityZoneInfo": [
        {"zoneName": name, "zoneState": {"available": _available(nodes)},
         "hosts": {n.name: {BINARY: _service(n)} for n in nodes}}
        for name, nodes in zones.items()] + internal}


def _internal(session: Session) -> list[dict[str, Any]]:
    """Nova's detail also shows the zone of its other services: here each live controller,
    as the conductor and scheduler it is."""
    hosts: dict[str, Any] = {}
    for row in live_controllers(session):
        state = {"available": True, "active": True, "updated_at": iso(row.last_seen)}
        hosts[controller_host(row)] = {
            "nova-conductor": state, "nova-scheduler": state}
    if not hosts:
        return []
    return [{"zoneName": "internal", "zoneState": {"available": True}, "hosts": hosts}]


def _zones(nodes: list[Node]) -> dict[str, list[Node]]:
    zones: dict[str, list[Node]] = {}
    for node in nodes:
        zones.setdefault(node.availability_zone, []).append(node)
    return dict(sorted(zones.items()))


def _available(nodes: list[Node]) -> bool:
    # Like Nova: a zone is available while any of its compute services is enabled and up.
    return any(n.enabled and is_up(n) for n in nodes)


def _service(node: Node) -> dict[str, Any]:
    return {"available": is_up(node), "active": node.enabled, "updated_at": updated_at(node)}
