"""/v3/attachments (Cinder 3.27+, complete at 3.44): a volume exported over NBD to the
compute node named by the connector; connection_info from the storage node's report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.base import utcnow
from ..db.models import Instance, Node
from ..db.volume import Volume, VolumeAttachment
from ..revision import bump
from ..service import controller, json_body, wrapped
from . import lock_order
from .access import find_volume
from .common import api_version, can_read, require_member, stamp, who

router = APIRouter()
A = "/v3/attachments"
# Connector keys only the server writes: the identity a live migration gave the
# attachment (servers/live_migration_volumes.py), the export it is plugged in with
# (compute/server_volumes_state.py), an attach being unwound, a detach's failure and
# the requests that began them (attach_outcomes.py).
SERVER_SET = frozenset({"psk_identity", "export", "unwind", "detach_error",
                        "attach_request", "detach_request"})


def _require(version: Version, minimum: str) -> None:
    if not version >= minimum:
        raise NotFound(f"The resource could not be found at microversion {version}.")


def connection_info(vol: Volume, att: VolumeAttachment) -> dict[str, Any] | None:
    if att.node_id is None:
        return None
    export = vol.exports.get(att.node_id) or {}
    return {"driver_volume_type": "nbd", "attachment_id": att.id, "volume_id": vol.id,
            "serial": vol.id,
            "data": {"host": export.get("host"), "port": export.get("port"),
                     "export": vol.id, "tls": True, "client_cn": att.node_name,
                     "access_mode": att.attach_mode, "ready": bool(export)}}


def view(vol: Volume, att: VolumeAttachment, detail: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"id": att.id, "status": att.status, "instance": att.instance_id,
                            "volume_id": att.volume_id}
    if detail:
        body.update(attached_at=stamp(att.attached_at), detached_at=None,
                    attach_mode=att.attach_mode, connection_info=connection_info(vol, att))
    return body


def _connect(session: Session, vol: Volume, att: VolumeAttachment, connector: Any,
             creds: Credentials) -> None:
    if not isinstance(connector, dict) or not isinstance(connector.get("host"), str):
        raise BadRequest("Invalid input received: the connector must be an object with the "
                         "compute node's name as 'host'.")
    node = session.scalar(select(Node).where(Node.name == connector["host"]))
    if node is None:
        raise BadRequest(f"Invalid input received: connector host "
                         f"{connector['host'][:64]!r} is not a node of this cloud.")
    _check_target(session, creds, att, node)
    # What the server sets in a connector is never the caller's (review finding: a member
    # renamed the identity an export admits, or named another attachment's): it is kept
    # from the attachment's connector as the server set it.
    att.connector = {**{k: v for k, v in connector.items() if isinstance(v, str | int | bool)
                        and k not in SERVER_SET},
                     **{k: v for k, v in (att.connector or {}).items() if k in SERVER_SET}}
    # Made through this API, no Nova action began it: its error goes on none (by time it
    # would land on the server's latest attach_volume action, maybe weeks old).
    att.connector.setdefault("attach_request", "")
    att.node_id, att.node_name, att.status = node.id, node.name, "attaching"
    if isinstance(connector.get("mountpoint"), str):
        att.device = connector["mountpoint"][:255]
    vol.status = "attaching"


def _check_target(session: Session, creds: Credentials, att: VolumeAttachment,
                  node: Node) -> None:
    """The export goes to the node that runs the attachment's server: a member may not have
    a volume served to any other node (an admin may, for an attachment without a server)."""
    inst = session.get(Instance, att.instance_id) if att.instance_id else None
    if inst is None:
        if not creds.is_admin:
            raise BadRequest("Invalid input received: a connector needs the instance_uuid "
                             "of a server of this project.")
        return
    if inst.node_id != node.id:
        raise BadRequest(f"Invalid input received: connector host {node.name!r} is not the "
                         f"compute node of instance {inst.id}.")


def _instance(session: Session, creds: Credentials, vol: Volume, instance_id: str) -> None:
    """Cinder trusts Nova here; atwill's callers are users, so the server must be theirs
    (and in the volume's project, an admin's too)."""
    inst = session.get(Instance, instance_id, populate_existing=True)
    if inst is None or inst.deleted or inst.project_id != vol.project_id or (
            not creds.is_admin and inst.project_id != creds.project_id):
        raise NotFound(f"Instance {instance_id[:64]} could not be found.")


def _owned(session: Session, creds: Credentials, instance_id: str) -> None:
    """The server exists, is not deleted and is the caller's (an admin's: any), read
    unlocked; _instance checks it again under the lock."""
    inst = session.get(Instance, instance_id)
    if inst is None or inst.deleted or (
            not creds.is_admin and inst.project_id != creds.project_id):
        raise NotFound(f"Instance {instance_id[:64]} could not be found.")


def _find(session: Session, creds: Credentials, attachment_id: str) -> VolumeAttachment:
    att = session.get(VolumeAttachment, attachment_id)
    if att is None or not can_read(creds, att.project_id):
        raise NotFound(f"Volume attachment could not be found with filter: attachment_id = "
                       f"{attachment_id[:64]}.")
    return att


def _locked(session: Session, creds: Credentials, attachment_id: str
            ) -> tuple[VolumeAttachment, Volume]:
    """The attachment and its volume, the volume's row locked and the attachment read
    again under that lock (it was read before: a change committed while this request
    waited for the lock — an unwound attach, a detach — would be overwritten)."""
    att = _find(session, creds, attachment_id)
    vol = find_volume(session, creds, att.volume_id, lock=True)
    try:
        session.refresh(att, with_for_update=True)
    except InvalidRequestError:  # deleted meanwhile
        raise NotFound(f"Volume attachment could not be found with filter: attachment_id = "
                       f"{attachment_id[:64]}.") from None
    return att, vol


@router.post(A)
def attachment_post(request: Request, body: dict = Depends(json_body),
                    creds: Credentials = Depends(who),
                    version: Version = Depends(api_version)) -> dict:
    _require(version, "3.27")
    data = wrapped(body, "attachment")
    if not isinstance(data.get("volume_uuid"), str):
        raise BadRequest("Invalid input: 'volume_uuid' is a required property.")
    instance = data.get("instance_uuid")
    if instance is not None and not isinstance(instance, str):
        raise BadRequest("Invalid input: 'instance_uuid' must be a string.")
    mode = data.get("mode", "rw") if version >= "3.54" else "rw"
    if mode not in ("rw", "ro"):
        raise BadRequest("Invalid input received: Invalid attachment mode: must be 'rw' or "
                         "'ro'.")
    with controller(request).db.session() as session:
        if instance is not None:
            # The caller's server (a plain read: another project's row is not locked)...
            _owned(session, creds, instance)
            # ...then held before the volume, so it is not deleted meanwhile (review
            # finding: a reserve that read it before a delete committed was kept, held
            # for a deleted server). _instance reads it again under this lock.
            lock_order.hold_server(session, instance)
        vol = find_volume(session, creds, data["volume_uuid"], lock=True)
        require_member(creds, vol.project_id, "volume:attachment_create")
        if instance is not None:
            _instance(session, creds, vol, instance)
        _check_attachable(session, vol, mode)
        att = VolumeAttachment(volume_id=vol.id, instance_id=instance,
                               project_id=vol.project_id, status="reserved", attach_mode=mode)
        vol.status = "reserved" if vol.status == "available" else vol.status
        if data.get("connector"):
            _connect(session, vol, att, data["connector"], creds)
        session.add(att)
        session.flush()
        vol.updated_at = utcnow()
        bump(session)
        return {"attachment": view(vol, att)}


def _check_attachable(session: Session, vol: Volume, mode: str) -> None:
    others = session.scalar(select(VolumeAttachment.id).where(
        VolumeAttachment.volume_id == vol.id).limit(1))
    if vol.status not in ("available", "in-use", "reserved") or (
            others is not None and not vol.multiattach):
        raise BadRequest(f"Invalid volume: Volume {vol.id} status must be available or "
                         f"downloading to reserve, but the current status is {vol.status}.")
    if vol.readonly and mode == "rw":
        raise BadRequest(f"Invalid volume: Volume {vol.id} is read-only; attach it with "
                         "mode 'ro'.")


@router.put(A + "/{attachment_id}")
def attachment_put(attachment_id: str, request: Request, body: dict = Depends(json_body),
                   creds: Credentials = Depends(who),
                   version: Version = Depends(api_version)) -> dict:
    _require(version, "3.27")
    data = wrapped(body, "attachment")
    if not data.get("connector"):
        raise BadRequest("Invalid input: 'connector' is a required property.")
    with controller(request).db.session() as session:
        att, vol = _locked(session, creds, attachment_id)
        require_member(creds, vol.project_id, "volume:attachment_update")
        if att.status == "attached":
            raise BadRequest(f"Invalid volume: attachment {att.id} is already connected.")
        if att.status not in ("reserved", "attaching"):
            # A detaching attachment is its node's to end (Cinder updates only reserved
            # and attached ones): connecting it again would export the volume anew while
            # the guest may still hold it, and lose the detach the node was told of.
            raise BadRequest(f"Invalid volume: Unable to update attachment {att.id}: "
                             f"invalid attachment status {att.status}.")
        if vol.status not in ("reserved", "attaching", "in-use"):
            # As a reserve checks it: an extend or an upload in flight is not overwritten.
            raise BadRequest(f"Invalid volume: Volume {vol.id} status must be reserved, "
                             f"attaching or in-use to connect an attachment, but the current "
                             f"status is {vol.status}.")
        _connect(session, vol, att, data["connector"], creds)
        att.updated_at = vol.updated_at = utcnow()
        bump(session)
        return {"attachment": view(vol, att)}


@router.post(A + "/{attachment_id}/action", status_code=204)
def attachment_action_post(attachment_id: str, request: Request,
                           body: dict = Depends(json_body), creds: Credentials = Depends(who),
                           version: Version = Depends(api_version)) -> Response:
    _require(version, "3.44")
    if list(body) != ["os-complete"]:
        raise BadRequest("There is no such action: " + ", ".join(k[:64] for k in body))
    with controller(request).db.session() as session:
        att, vol = _locked(session, creds, attachment_id)
        require_member(creds, vol.project_id, "volume:attachment_complete")
        if att.node_id is None:
            raise BadRequest(f"Invalid volume: attachment {att.id} has no connector yet.")
        att.status, att.attached_at = "attached", att.attached_at or utcnow()
        vol.status, vol.updated_at = "in-use", utcnow()
        bump(session)
    return Response(status_code=204)


@router.delete(A + "/{attachment_id}")
def attachment_delete(attachment_id: str, request: Request,
                      creds: Credentials = Depends(who),
                      version: Version = Depends(api_version)) -> dict:
    _require(version, "3.27")
    with controller(request).db.session() as session:
        att, vol = _locked(session, creds, attachment_id)
        require_member(creds, vol.project_id, "volume:attachment_delete")
        session.delete(att)
        session.flush()
        left = session.scalars(select(VolumeAttachment).where(
            VolumeAttachment.volume_id == vol.id)).all()
        if any(a.status == "attached" for a in left):
            vol.status = "in-use"
        elif left:
            vol.status = "reserved"
        else:
            # The export is revoked now; until the storage node says so, it is detaching.
            vol.status = "detaching" if att.node_id in vol.exports else "available"
        vol.updated_at = utcnow()
        bump(session)
        return {"attachments": [view(vol, a, detail=False) for a in left]}


def _listing(request: Request, creds: Credentials, detail: bool) -> dict:
    with controller(request).db.session() as session:
        query = select(VolumeAttachment).order_by(VolumeAttachment.created_at.desc())
        if not (creds.reads_all and request.query_params.get("all_tenants")):
            query = query.where(VolumeAttachment.project_id == creds.project_id)
        for key, column in (("volume_id", VolumeAttachment.volume_id),
                            ("instance_id", VolumeAttachment.instance_id),
                            ("status", VolumeAttachment.status)):
            if request.query_params.get(key):
                query = query.where(column == request.query_params[key])
        atts = session.scalars(query).all()
        vols = {v.id: v for v in session.scalars(select(Volume).where(
            Volume.id.in_({a.volume_id for a in atts})))}
        return {"attachments": [view(vols[a.volume_id], a, detail) for a in atts]}


@router.get(A)
def attachments_get(request: Request, creds: Credentials = Depends(who),
                    version: Version = Depends(api_version)) -> dict:
    _require(version, "3.27")
    return _listing(request, creds, detail=False)


@router.get(A + "/detail")
def attachments_detail_get(request: Request, creds: Credentials = Depends(who),
                           version: Version = Depends(api_version)) -> dict:
    _require(version, "3.27")
    return _listing(request, creds, detail=True)


@router.get(A + "/{attachment_id}")
def attachment_get(attachment_id: str, request: Request, creds: Credentials = Depends(who),
                   version: Version = Depends(api_version)) -> dict:
    _require(version, "3.27")
    with controller(request).db.session() as session:
        att = _find(session, creds, attachment_id)
        return {"attachment": view(session.get(Volume, att.volume_id), att)}
