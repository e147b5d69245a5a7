"""/v3/volumes: create, list, show, update, delete (Cinder's states and rules)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest
from ...core.microversion import Version
from ...core.policy import Credentials
from ...core.text import clean_name
from ..db.base import utcnow
from ..db.volume import Volume, VolumeAttachment, VolumeSnapshot
from ..revision import bump
from ..service import controller, json_body, wrapped
from . import freeze, listing, placement, sources, volume_upload
from .access import find_volume, render
from .common import api_version, body_bool, require_member, who
from .metadata_input import metadata
from .types import default_type, find_type
from .usage import charge

router = APIRouter()
V = "/v3/volumes"
ZONES = ("nova",)
DELETABLE = ("available", "error", "error_restoring", "error_extending", "error_managing")
CREATE_KEYS = {"size", "name", "description", "display_name", "display_description",
               "volume_type", "availability_zone", "snapshot_id", "source_volid", "imageRef",
               "image_id", "metadata", "multiattach", "consistencygroup_id", "group_id",
               "backup_id", "source_replica"}


def parse_size(value: Any, required: bool) -> int | None:
    if value is None and not required:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadRequest(f"Invalid input received: Volume size '{str(value)[:64]}' must be an "
                         "integer and greater than 0")
    return value


def _text(data: dict[str, Any], key: str, old: str) -> str | None:
    value = data.get(key, data.get(old))
    return clean_name(value, key, 255)


def new_volume(session: Session, creds: Credentials, data: dict[str, Any]) -> Volume:
    unknown = sorted(set(data) - CREATE_KEYS)
    if unknown:
        raise BadRequest(f"Invalid input: additional properties are not allowed "
                         f"({', '.join(k[:64] for k in unknown)}).")
    for unsupported in ("backup_id", "source_replica", "consistencygroup_id", "group_id"):
        if data.get(unsupported):
            raise BadRequest(f"Invalid input received: {unsupported} is not supported here.")
    size = parse_size(data.get("size"), required=not (data.get("snapshot_id")
                                                       or data.get("source_volid")))
    zone = data.get("availability_zone") or "nova"
    if zone not in ZONES:
        raise BadRequest(f"Invalid input received: Availability zone '{str(zone)[:64]}' is "
                         "invalid.")
    type_ref = data.get("volume_type")
    if type_ref is not None and not isinstance(type_ref, str):
        raise BadRequest("Invalid input: 'volume_type' must be a string.")
    vtype = find_type(session, type_ref) if type_ref else default_type(session)
    if not vtype.is_public and not creds.is_admin:
        raise BadRequest(f"Volume type {type_ref} could not be found.")
    vol = Volume(project_id=creds.project_id, user_id=creds.user_id, size=size or 0,
                 name=_text(data, "name", "display_name"), status="creating",
                 description=_text(data, "description", "display_description"),
                 availability_zone=zone, volume_type_id=vtype.id,
                 meta=metadata(data.get("metadata") or {}),
                 multiattach=body_bool(data.get("multiattach", False), "multiattach"),
                 image_meta={}, exports={})
    return _sourced(session, creds, data, vol, vtype.name)


def _sourced(session: Session, creds: Credentials, data: dict[str, Any], vol: Volume,
             type_name: str) -> Volume:
    given = [k for k in ("snapshot_id", "source_volid", "imageRef", "image_id") if data.get(k)]
    if len(given) > 1 and given != ["imageRef", "image_id"]:
        raise BadRequest("Invalid input received: only one of snapshot_id, source_volid and "
                         "imageRef may be given.")
    parent = None
    if data.get("snapshot_id"):
        snap = session.get(VolumeSnapshot, str(data["snapshot_id"]))
        vol.size = vol.size or (snap.size if snap is not None else 0)
        parent = sources.from_snapshot(session, creds, data["snapshot_id"], vol)
    elif data.get("source_volid"):
        src = session.get(Volume, str(data["source_volid"]))
        vol.size = vol.size or (src.size if src is not None else 0)
        parent = sources.from_volume(session, creds, data["source_volid"], vol)
    elif data.get("imageRef") or data.get("image_id"):
        sources.from_image(session, creds, data.get("imageRef") or data["image_id"], vol)
    charge(session, vol.project_id, type_name, volumes=1, gigabytes=vol.size, size=vol.size)
    if parent is not None:
        # A copy is made by the node holding its source, from its own files.
        vol.bootable, vol.image_meta = parent.bootable, dict(parent.image_meta)
        if placement.takes_copy(session, parent.node_id, vol.size):
            vol.node_id, vol.node_name = parent.node_id, parent.node_name
        else:  # on no node, as place() leaves it: no storage node is asked to make it
            vol.status, vol.error = "error", placement.NO_BACKEND
    else:
        placement.place(session, vol)
    session.add(vol)
    session.flush()
    return vol


@router.post(V, status_code=202)
def volume_post(request: Request, body: dict = Depends(json_body),
                creds: Credentials = Depends(who),
                version: Version = Depends(api_version)) -> JSONResponse:
    if creds.project_id is None:
        raise BadRequest("A project-scoped token is required to create a volume.")
    require_member(creds, creds.project_id, "volume:create")
    data = wrapped(body, "volume")
    with controller(request).db.session() as session:
        vol = new_volume(session, creds, data)
        bump(session)
        view = render(request, session, [vol], version, creds, extended=False)[0]
    return JSONResponse({"volume": view}, status_code=202)


@router.get(V)
def volumes_get(request: Request, creds: Credentials = Depends(who),
                version: Version = Depends(api_version)) -> dict:
    return listing.volumes(request, creds, version, detail=False)


@router.get(V + "/detail")
def volumes_detail_get(request: Request, creds: Credentials = Depends(who),
                       version: Version = Depends(api_version)) -> dict:
    return listing.volumes(request, creds, version, detail=True)


@router.get(V + "/{volume_id}")
def volume_get(volume_id: str, request: Request, creds: Credentials = Depends(who),
               version: Version = Depends(api_version)) -> dict:
    with controller(request).db.session() as session:
        vol = find_volume(session, creds, volume_id)
        return {"volume": render(request, session, [vol], version, creds)[0]}


@router.put(V + "/{volume_id}")
def volume_put(volume_id: str, request: Request, body: dict = Depends(json_body),
               creds: Credentials = Depends(who),
               version: Version = Depends(api_version)) -> dict:
    data = wrapped(body, "volume")
    allowed = {"name", "description", "display_name", "display_description", "metadata"}
    if not data or set(data) - allowed:
        raise BadRequest("Invalid input: update takes name, description and metadata.")
    with controller(request).db.session() as session:
        vol = find_volume(session, creds, volume_id, lock=True)
        require_member(creds, vol.project_id, "volume:update")
        if "name" in data or "display_name" in data:
            vol.name = _text(data, "name", "display_name")
        if "description" in data or "display_description" in data:
            vol.description = _text(data, "description", "display_description")
        if "metadata" in data:
            vol.meta = metadata(data["metadata"] or {})
        vol.updated_at = utcnow()
        return {"volume": render(request, session, [vol], version, creds, extended=False)[0]}


@router.delete(V + "/{volume_id}", status_code=202)
def volume_delete(volume_id: str, request: Request, creds: Credentials = Depends(who)) -> Response:
    cascade = (request.query_params.get("cascade") or "").lower() in ("true", "1", "yes")
    with controller(request).db.session() as session:
        vol = find_volume(session, creds, volume_id, lock=True)
        require_member(creds, vol.project_id, "volume:delete")
        start_delete(session, vol, cascade)
        bump(session)
    return Response(status_code=202)


def start_delete(session: Session, vol: Volume, cascade: bool, force: bool = False) -> None:
    freeze.assert_not_frozen(session, vol.node_id)  # forced too, as Cinder
    snaps = session.scalars(select(VolumeSnapshot).where(
        VolumeSnapshot.volume_id == vol.id)).all()
    attached = session.scalar(select(VolumeAttachment.id).where(
        VolumeAttachment.volume_id == vol.id).limit(1))
    if not force and (vol.status not in DELETABLE or attached or (snaps and not cascade)):
        raise BadRequest("Invalid volume: Volume status must be available or error or "
                         "error_restoring or error_extending or error_managing and must not "
                         "be migrating, attached, belong to a group, have snapshots, awaiting "
                         "a transfer, or be disassociated from snapshots after volume "
                         "transfer.")
    if not force and cascade and any(s.status not in ("available", "error", "deleting")
                                     for s in snaps):
        raise BadRequest("Invalid volume: Snapshot of volume not in a state that allows "
                         "cascade delete.")
    if vol.status == "uploading":
        volume_upload.abandon(session, vol)
    if vol.node_id is None:
        # Never placed: nothing is on any disk.
        session.execute(delete(VolumeSnapshot).where(VolumeSnapshot.volume_id == vol.id))
        session.delete(vol)
        return
    for snap in snaps:
        snap.status, snap.updated_at = "deleting", utcnow()
    vol.status, vol.updated_at = "deleting", utcnow()
