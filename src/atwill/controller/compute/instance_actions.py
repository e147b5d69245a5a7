"""/servers/{id}/os-instance-actions: what was done to a server (server event list)."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from ...core.errors import NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.base import iso
from ..db.models import InstanceAction, InstanceActionEvent
from ..servers import builds
from ..service import authorize, caller, controller
from .common import api_version

router = APIRouter()


def _action(a: InstanceAction, version: Version) -> dict:
    out = {"action": a.action, "instance_uuid": a.instance_id, "request_id": a.request_id,
           "user_id": a.user_id, "project_id": a.project_id, "message": a.message,
           "start_time": iso(a.start_time)}
    if version >= "2.58":
        out["updated_at"] = iso(a.updated_at)
    return out


@router.get("/v2.1/servers/{server_id}/os-instance-actions")
def instance_actions_get(server_id: str, request: Request,
                         creds: Credentials = Depends(caller),
                         version: Version = Depends(api_version)) -> dict:
    with controller(request).db.session() as session:
        inst = builds.get(session, server_id, creds, include_deleted=True)
        authorize(creds, "compute:servers:show", project_id=inst.project_id)
        found = session.scalars(select(InstanceAction).where(
            InstanceAction.instance_id == inst.id).order_by(InstanceAction.id.desc()))
        return {"instanceActions": [_action(a, version) for a in found]}


@router.get("/v2.1/servers/{server_id}/os-instance-actions/{request_id}")
def instance_action_get(server_id: str, request_id: str, request: Request,
                        creds: Credentials = Depends(caller),
                        version: Version = Depends(api_version)) -> dict:
    with controller(request).db.session() as session:
        inst = builds.get(session, server_id, creds, include_deleted=True)
        authorize(creds, "compute:servers:show", project_id=inst.project_id)
        action = session.scalar(select(InstanceAction).where(
            InstanceAction.instance_id == inst.id, InstanceAction.request_id == request_id))
        if action is None:
            raise NotFound(f"Action {request_id} not found")
        out = _action(action, version)
        # Nova: admins always see events; the owner sees them from 2.51, without traceback.
        if creds.is_admin or version >= "2.51":
            events = session.scalars(select(InstanceActionEvent).where(
                InstanceActionEvent.action_id == action.id).order_by(InstanceActionEvent.id))
            out["events"] = [_event(e, inst.project_id, version, creds) for e in events]
        return {"instanceAction": out}


def _event(e: InstanceActionEvent, project_id: str, version: Version,
           creds: Credentials) -> dict:
    out = {"event": e.event, "start_time": iso(e.start_time),
           "finish_time": iso(e.finish_time), "result": e.result}
    if creds.is_admin:
        out["traceback"] = e.traceback
    if version >= "2.62":
        if creds.is_admin:
            out["host"] = e.host or ""
        out["hostId"] = host_id(project_id, e.host)
    if version >= "2.84":
        out["details"] = e.traceback
    return out


def host_id(project_id: str, host: str | None) -> str:
    """Nova's obfuscated host: sha224 of project and host, '' when there is no host."""
    if not host:
        return ""
    return hashlib.sha224(f"{project_id}{host}".encode()).hexdigest()
