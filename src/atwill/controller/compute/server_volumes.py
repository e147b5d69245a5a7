"""/servers/{id}/os-volume_attachments: list, show, attach, update (2.85), detach.

Response shapes by microversion as Nova: `tag` from 2.70, `delete_on_termination` from
2.79, and from 2.89 show and list drop `id` for `attachment_id` and `bdm_uuid`. Swapping
a volume for another is not offered: the compute nodes cannot move a running guest's
disk between two NBD exports, so an admin's swap gets Nova's 409 for an impossible one.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, Conflict, Forbidden, NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ...core.text import clean_name
from ..db.models import Instance
from ..db.volume import VolumeAttachment
from ..revision import bump
from ..servers import actions, builds, instance_state
from ..service import authorize, caller, controller, json_body, wrapped
from ..volume import attach_outcomes, lock_order
from ..volume.access import find_volume
from . import server_volumes_state as state
from .common import api_version, query_int
from .server_actions import refuse_locked

router = APIRouter()
BASE = "/v2.1/servers/{server_id}/os-volume_attachments"
# Nova's check_instance_state for attach and detach (with no task in progress).
CHANGEABLE = frozenset({"active", "paused", "stopped"})
DEVICE = re.compile(r"^/dev/[a-zA-Z0-9]+$")
KEYS = {"volumeId": "2.1", "device": "2.1", "tag": "2.49", "delete_on_termination": "2.79"}


def view(att: VolumeAttachment, version: Version, created: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"device": att.device, "serverId": att.instance_id,
                            "volumeId": att.volume_id}
    if created or not version >= "2.89":
        body["id"] = att.volume_id
    if version >= "2.70":
        body["tag"] = att.tag
    if version >= "2.79":
        body["delete_on_termination"] = att.delete_on_termination
    if not created and version >= "2.89":
        body["attachment_id"] = att.id
        body["bdm_uuid"] = state.bdm_uuid(att)
    return body


def _server(session: Session, server_id: str, creds: Credentials, change: str | None = None,
            ) -> Instance:
    inst = builds.get(session, server_id, creds)
    if change is None:
        authorize(creds, "compute:servers:show", project_id=inst.project_id)
        return inst
    authorize(creds, "compute:servers:action", project_id=inst.project_id)
    _changeable(inst, creds, change)
    # Then held before the volume and read again under it (review finding: an attach
    # that read the server before its delete committed was kept, its volume held for a
    # deleted server). Only after the ownership check above.
    lock_order.hold_server(session, inst.id)
    inst = session.get(Instance, inst.id, populate_existing=True)
    if inst is None or inst.deleted:
        raise NotFound(f"Instance {server_id} could not be found.")
    _changeable(inst, creds, change)
    return inst


def _changeable(inst: Instance, creds: Credentials, change: str) -> None:
    refuse_locked(inst, creds)
    if inst.node_id is None:  # never placed: no node to attach on
        raise instance_state.refused(inst, change, "vm_state", inst.vm_state)
    instance_state.check(inst, change, CHANGEABLE)


def _attachment(session: Session, inst: Instance, volume_id: str) -> VolumeAttachment:
    for att in state.of_server(session, inst.id):
        if att.volume_id == volume_id:
            return att
    raise NotFound(f"No volume Block Device Mapping with id {volume_id[:64]}.")


@router.get(BASE)
def volume_attachments_get(server_id: str, request: Request,
                           creds: Credentials = Depends(caller),
                           version: Version = Depends(api_version)) -> dict:
    limit = query_int(request, "limit")
    offset = query_int(request, "offset") or 0
    with controller(request).db.session() as session:
        atts = state.of_server(session, _server(session, server_id, creds).id)
        atts = atts[offset:] if limit is None else atts[offset:offset + limit]
        return {"volumeAttachments": [view(a, version) for a in atts]}


@router.get(BASE + "/{volume_id}")
def volume_attachment_get(server_id: str, volume_id: str, request: Request,
                          creds: Credentials = Depends(caller),
                          version: Version = Depends(api_version)) -> dict:
    with controller(request).db.session() as session:
        inst = _server(session, server_id, creds)
        return {"volumeAttachment": view(_attachment(session, inst, volume_id), version)}


def parse_attach(body: dict[str, Any], version: Version) -> dict[str, Any]:
    data = wrapped(body, "volumeAttachment")
    for key in data:
        if key not in KEYS or not version >= KEYS[key]:
            raise BadRequest(f"Invalid input for field/attribute volumeAttachment. Value: "
                             f"{key[:64]!r}. Additional properties are not allowed.")
    if not isinstance(data.get("volumeId"), str) or not data["volumeId"]:
        raise BadRequest("Invalid input for field/attribute volumeId: 'volumeId' is a "
                         "required property.")
    device = data.get("device")
    if device is not None and (not isinstance(device, str) or not DEVICE.match(device)):
        raise BadRequest(f"Invalid input for field/attribute device. Value: {device!r}. "
                         "It does not match '^/dev/[a-zA-Z0-9]+$'.")
    tag = data.get("tag")
    if tag is not None:
        clean_name(tag, "tag", 60, required=True)
        if "," in tag or "/" in tag:
            raise BadRequest(f"Invalid input for field/attribute tag. Value: {tag!r}.")
    flag = data.get("delete_on_termination", False)
    if not isinstance(flag, bool):
        raise BadRequest(f"Invalid input for field/attribute delete_on_termination. "
                         f"Value: {flag!r}. It is not of type 'boolean'.")
    return {"volume_id": data["volumeId"], "tag": tag, "delete_on_termination": flag}


@router.post(BASE)
def volume_attachments_post(server_id: str, request: Request,
                            body: dict = Depends(json_body),
                            creds: Credentials = Depends(caller),
                            version: Version = Depends(api_version)) -> dict:
    wanted = parse_attach(body, version)
    with controller(request).db.session() as session:
        inst = _server(session, server_id, creds, change="attach_volume")
        vol = find_volume(session, creds, wanted["volume_id"], lock=True)
        att = state.attach(session, inst, vol, wanted["tag"], wanted["delete_on_termination"])
        attach_outcomes.asked(att, actions.start(
            session, inst.id, "attach_volume", request.scope["state"]["request_id"],
            creds.user_id, creds.project_id))  # its error event goes on this action
        bump(session, of=inst)
        return {"volumeAttachment": view(att, version, created=True)}


@router.put(BASE + "/{volume_id}", status_code=202)
def volume_attachment_put(server_id: str, volume_id: str, request: Request,
                          body: dict = Depends(json_body),
                          creds: Credentials = Depends(caller),
                          version: Version = Depends(api_version)) -> Response:
    data = wrapped(body, "volumeAttachment")
    new_id = data.get("volumeId")
    if not isinstance(new_id, str) or not new_id:
        raise BadRequest("Invalid input for field/attribute volumeId: 'volumeId' is a "
                         "required property.")
    with controller(request).db.session() as session:
        inst = builds.get(session, server_id, creds)
        att = _attachment(session, inst, volume_id)
        if new_id != volume_id:
            if not creds.is_admin:
                raise Forbidden("Policy doesn't allow os_compute_api:os-volumes-attachments:"
                                "swap to be performed.")
            raise Conflict(f"Cannot 'swap_volume' instance {inst.id}: swapping a volume for "
                           "another is not supported by this cloud.")
        if not version >= "2.85":
            raise BadRequest("Invalid input: the new volume must differ from the attached "
                             "one before microversion 2.85.")
        authorize(creds, "compute:servers:action", project_id=inst.project_id)
        refuse_locked(inst, creds)
        _update(_held(session, att, volume_id), data)
        bump(session, of=inst)
    return Response(status_code=202)


def _held(session: Session, att: VolumeAttachment, volume_id: str) -> VolumeAttachment:
    """The attachment read again under its row lock: a detach or a node's report that
    deleted it meanwhile is a 404 (its UPDATE matched no row: a 500 before). Only the
    attachment's own row: no volume or server lock is waited for while holding it."""
    held = session.scalar(select(VolumeAttachment).where(
        VolumeAttachment.id == att.id, VolumeAttachment.status.in_(state.LISTED))
        .with_for_update().execution_options(populate_existing=True))
    if held is None:
        raise NotFound(f"No volume Block Device Mapping with id {volume_id[:64]}.")
    return held


def _update(att: VolumeAttachment, data: dict[str, Any]) -> None:
    """2.85: only delete_on_termination may change; the other fields must match."""
    for key, current in (("device", att.device), ("tag", att.tag), ("serverId",
                         att.instance_id), ("id", att.volume_id)):
        if key in data and data[key] != current:
            raise BadRequest(f"Invalid input: the attachment's {key} cannot be changed.")
    unknown = set(data) - {"volumeId", "device", "tag", "serverId", "id",
                           "delete_on_termination"}
    if unknown:
        raise BadRequest(f"Invalid input for field/attribute volumeAttachment: "
                         f"{sorted(unknown)[0][:64]!r}. Additional properties are not allowed.")
    flag = data.get("delete_on_termination", att.delete_on_termination)
    if not isinstance(flag, bool):
        raise BadRequest(f"Invalid input for field/attribute delete_on_termination. "
                         f"Value: {flag!r}. It is not of type 'boolean'.")
    att.delete_on_termination = flag


@router.delete(BASE + "/{volume_id}", status_code=202)
def volume_attachment_delete(server_id: str, volume_id: str, request: Request,
                             creds: Credentials = Depends(caller)) -> Response:
    with controller(request).db.session() as session:
        inst = _server(session, server_id, creds, change="detach_volume")
        att = state.relocked(session, _attachment(session, inst, volume_id))
        if att is None:
            raise NotFound(f"No volume Block Device Mapping with id {volume_id[:64]}.")
        if att.boot_index == 0:
            raise BadRequest("Cannot detach a root device volume")
        if att.status == "detaching":
            raise BadRequest(f"Invalid volume: volume {volume_id[:64]} is already being "
                             "detached.")
        state.detach(session, att)
        attach_outcomes.asked(att, actions.start(
            session, inst.id, "detach_volume", request.scope["state"]["request_id"],
            creds.user_id, creds.project_id))
        bump(session, of=inst)
    return Response(status_code=202)
