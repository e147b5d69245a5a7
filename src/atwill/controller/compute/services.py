"""/os-services: nova-compute services of the compute nodes (enable, disable, force down,
delete) and the live controllers' nova-conductor and nova-scheduler (listed only)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, Conflict, NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ...core.text import has_control
from ..cluster import nodes
from ..db.base import iso
from ..db.compute import Node
from ..service import authorize, caller, controller, json_body
from .common import api_version
from .nodes import (
    BINARY,
    all_nodes,
    controller_host,
    find,
    is_up,
    live_controllers,
    shown_id,
    updated_at,
)

router = APIRouter()
LEGACY_ACTIONS = ("enable", "disable", "disable-log-reason", "force-down")
CONTROLLER_BINARIES = ("nova-conductor", "nova-scheduler")


@router.get("/v2.1/os-services")
def services_get(request: Request, creds: Credentials = Depends(caller),
                 version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:services:list")
    host, binary = request.query_params.get("host"), request.query_params.get("binary")
    with controller(request).db.session() as session:
        found = [to_api(n, version) for n in all_nodes(session)] + controller_services(
            session, version)
    return {"services": [s for s in found if host in (None, s["host"])
                         and binary in (None, s["binary"])]}


@router.put("/v2.1/os-services/{service_id}")
def service_put(service_id: str, request: Request, body: dict = Depends(json_body),
                creds: Credentials = Depends(caller),
                version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:services:update")
    if service_id in LEGACY_ACTIONS:
        # openstacksdk still uses the pre-2.53 action URLs at newer versions; serve both.
        return _legacy(request, service_id, body)
    if not version >= "2.53":
        raise NotFound(f"Unknown service action {service_id}.")
    changes = _parse_update(body)
    with controller(request).db.session() as session:
        node = find(session, service_id, version, "service_id", "Service")
        _apply(node, changes)
        session.flush()
        return {"service": to_api(node, version)}


@router.delete("/v2.1/os-services/{service_id}")
def service_delete(service_id: str, request: Request, creds: Credentials = Depends(caller),
                   version: Version = Depends(api_version)) -> Response:
    authorize(creds, "compute:services:delete")
    with controller(request).db.session() as session:
        node = find(session, service_id, version, "service_id", "Service")
        if node.running_vms:
            raise Conflict(f"Unable to delete compute service {service_id}: it is hosting "
                           f"{node.running_vms} instances.")
        # As `atwill node remove`: refused while it holds instances, volumes or snapshots;
        # its certificate revoked and every node told (it leaves their overlay peers).
        nodes.remove(session, node, force=False)
    return Response(status_code=204)


def to_api(node: Node, version: Version) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": shown_id(node.service_id, version), "binary": BINARY, "host": node.name,
        "zone": node.availability_zone, "status": "enabled" if node.enabled else "disabled",
        "state": "up" if is_up(node) else "down", "updated_at": updated_at(node),
        "disabled_reason": node.disabled_reason}
    if version >= "2.11":
        out["forced_down"] = node.forced_down
    return out


def controller_services(session: Session, version: Version) -> list[dict[str, Any]]:
    """Each live controller as the nova-conductor and nova-scheduler Nova would list (zone
    'internal'); their ids are derived from the controller's URL, so they are stable."""
    out = []
    for row in live_controllers(session):
        for binary in CONTROLLER_BINARIES:
            ident = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{row.public_url}#{binary}"))
            service: dict[str, Any] = {
                "id": shown_id(ident, version), "binary": binary,
                "host": controller_host(row),
                "zone": "internal", "status": "enabled", "state": "up",
                "updated_at": iso(row.last_seen), "disabled_reason": None}
            if version >= "2.11":
                service["forced_down"] = False
            out.append(service)
    return out


def _parse_update(body: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - {"status", "disabled_reason", "forced_down"})
    if unknown or not body:
        raise BadRequest("Invalid service update: only status, disabled_reason and "
                         "forced_down may be given, and at least one of them.")
    if body.get("status", "enabled") not in ("enabled", "disabled"):
        raise BadRequest("Invalid input for field/attribute status: enabled or disabled.")
    if "disabled_reason" in body and body.get("status") != "disabled":
        raise BadRequest("Specifying 'disabled_reason' with status 'enabled' is invalid.")
    reason = body.get("disabled_reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 255
                               or has_control(reason)):
        raise BadRequest("Invalid input for field/attribute disabled_reason: a string of "
                         "at most 255 characters, without control characters.")
    if "forced_down" in body and not isinstance(body["forced_down"], bool):
        raise BadRequest("Invalid input for field/attribute forced_down: a boolean.")
    return body


def _apply(node: Node, changes: dict[str, Any]) -> None:
    if "status" in changes:
        node.enabled = changes["status"] == "enabled"
        node.disabled_reason = None if node.enabled else changes.get("disabled_reason")
    if "forced_down" in changes:
        node.forced_down = changes["forced_down"]


def _legacy(request: Request, action: str, body: dict[str, Any]) -> dict:
    host, binary = body.get("host"), body.get("binary")
    if not isinstance(host, str) or binary != BINARY:
        raise BadRequest(f"Invalid input: 'host' and 'binary' ({BINARY}) are required.")
    changes: dict[str, Any] = {"enable": {"status": "enabled"},
                               "disable": {"status": "disabled"}}.get(action, {})
    if action == "disable-log-reason":
        changes = {"status": "disabled", "disabled_reason": body.get("disabled_reason")}
    if action == "force-down":
        changes = {"forced_down": body.get("forced_down")}
    _parse_update(changes)
    with controller(request).db.session() as session:
        node = _by_host(session, host)
        _apply(node, changes)
        out = {"host": host, "binary": binary}
        if action == "force-down":
            return {"service": {**out, "forced_down": node.forced_down}}
        out["status"] = "enabled" if node.enabled else "disabled"
        if action == "disable-log-reason":
            out["disabled_reason"] = node.disabled_reason
        return {"service": out}


def _by_host(session: Session, host: str) -> Node:
    node = next((n for n in all_nodes(session) if n.name == host), None)
    if node is None:
        raise NotFound(f"Compute host {host} could not be found.")
    return node
