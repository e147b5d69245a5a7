"""/v3/snapshots: point-in-time copies kept by the volume's storage node."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from ...core.errors import BadRequest, NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ...core.text import clean_name
from ..db.base import utcnow
from ..db.volume import Volume, VolumeSnapshot, VolumeType
from ..revision import bump
from ..service import controller, json_body, wrapped
from . import freeze, listing, lock_order, placement
from .access import find_snapshot
from .common import api_version, body_bool, require_admin, require_member, who
from .metadata_input import metadata
from .usage import charge
from .views import snapshot_view

router = APIRouter()
S = "/v3/snapshots"
CREATE_KEYS = {"volume_id", "name", "description", "display_name", "display_description",
               "force", "metadata"}
STATUSES = ("creating", "available", "deleting", "error", "error_deleting", "backing-up",
            "restoring", "unmanaging")


def _text(data: dict[str, Any], key: str, old: str) -> str | None:
    return clean_name(data.get(key, data.get(old)), key, 255)


@router.post(S, status_code=202)
def snapshot_post(request: Request, body: dict = Depends(json_body),
                  creds: Credentials = Depends(who),
                  version: Version = Depends(api_version)) -> JSONResponse:
    data = wrapped(body, "snapshot")
    unknown = sorted(set(data) - CREATE_KEYS)
    if unknown:
        raise BadRequest(f"Invalid input: additional properties are not allowed "
                         f"({', '.join(k[:64] for k in unknown)}).")
    if not isinstance(data.get("volume_id"), str):
        raise BadRequest("Invalid input: 'volume_id' is a required property.")
    force = body_bool(data.get("force", False), "force")
    with controller(request).db.session() as session:
        # It claims quota and node space: locked in lock_order's order.
        vol = lock_order.volume(session, creds, data["volume_id"], charge=True)
        require_member(creds, vol.project_id, "volume:create_snapshot")
        freeze.assert_not_frozen(session, vol.node_id)
        # From 3.66 an in-use volume is snapshotted without force (Cinder too).
        allowed = ("available", "in-use") if force or version >= "3.66" else ("available",)
        if vol.status not in allowed:
            raise BadRequest(f"Invalid volume: Volume {vol.id} status must be available, but "
                             f"current status is: {vol.status}.")
        vtype = session.get(VolumeType, vol.volume_type_id)
        charge(session, vol.project_id, vtype.name, snapshots=1, gigabytes=vol.size)
        # Cinder's scheduler checks the volume's backend (create_snapshot): with its service
        # disabled or down, or no room, the snapshot is accepted and left in error (its
        # quota kept until it is deleted), and no node is asked to make it.
        placed = placement.claim_on(session, vol.node_id, vol.size)
        snap = VolumeSnapshot(volume_id=vol.id, project_id=vol.project_id,
                              user_id=creds.user_id, size=vol.size,
                              status="creating" if placed else "error",
                              name=_text(data, "name", "display_name"),
                              description=_text(data, "description", "display_description"),
                              meta=metadata(data.get("metadata") or {}))
        session.add(snap)
        session.flush()
        if not placed:
            snap.error = placement.SNAPSHOT_NO_BACKEND.format(
                id=snap.id, host=f"{vol.node_name}@atwill")
        bump(session)
        view = snapshot_view(snap, version, extended=False)
    return JSONResponse({"snapshot": view}, status_code=202)


@router.get(S)
def snapshots_get(request: Request, creds: Credentials = Depends(who),
                  version: Version = Depends(api_version)) -> dict:
    return listing.snapshots(request, creds, version, detail=False)


@router.get(S + "/detail")
def snapshots_detail_get(request: Request, creds: Credentials = Depends(who),
                         version: Version = Depends(api_version)) -> dict:
    return listing.snapshots(request, creds, version, detail=True)


@router.get(S + "/{snapshot_id}")
def snapshot_get(snapshot_id: str, request: Request, creds: Credentials = Depends(who),
                 version: Version = Depends(api_version)) -> dict:
    with controller(request).db.session() as session:
        return {"snapshot": snapshot_view(find_snapshot(session, creds, snapshot_id),
                                          version)}


@router.put(S + "/{snapshot_id}")
def snapshot_put(snapshot_id: str, request: Request, body: dict = Depends(json_body),
                 creds: Credentials = Depends(who),
                 version: Version = Depends(api_version)) -> dict:
    data = wrapped(body, "snapshot")
    allowed = {"name", "description", "display_name", "display_description"}
    if not data or set(data) - allowed:
        raise BadRequest("Invalid input: update takes name and description.")
    with controller(request).db.session() as session:
        snap = find_snapshot(session, creds, snapshot_id)
        require_member(creds, snap.project_id, "volume:update_snapshot")
        if "name" in data or "display_name" in data:
            snap.name = _text(data, "name", "display_name")
        if "description" in data or "display_description" in data:
            snap.description = _text(data, "description", "display_description")
        snap.updated_at = utcnow()
        return {"snapshot": snapshot_view(snap, version, extended=False)}


@router.delete(S + "/{snapshot_id}", status_code=202)
def snapshot_delete(snapshot_id: str, request: Request,
                    creds: Credentials = Depends(who)) -> Response:
    with controller(request).db.session() as session:
        snap = find_snapshot(session, creds, snapshot_id)
        require_member(creds, snap.project_id, "volume:delete_snapshot")
        vol = session.get(Volume, snap.volume_id)
        freeze.assert_not_frozen(session, vol.node_id if vol is not None else None)
        if snap.status not in ("available", "error"):
            raise BadRequest("Invalid snapshot: Volume Snapshot status must be available or "
                             "error and must not be part of a group.")
        if placement.unscheduled(snap) or vol is None or vol.node_id is None:
            # On no node's disk (never made, or its node was removed): nothing to wait for.
            session.delete(snap)
        else:
            snap.status, snap.updated_at = "deleting", utcnow()
        bump(session)
    return Response(status_code=202)


@router.post(S + "/{snapshot_id}/action", status_code=202)
def snapshot_action_post(snapshot_id: str, request: Request, body: dict = Depends(json_body),
                         creds: Credentials = Depends(who)) -> Response:
    if len(body) != 1 or next(iter(body)) not in ("os-reset_status", "os-force_delete"):
        raise BadRequest("There is no such action: " + ", ".join(k[:64] for k in body))
    name, arg = next(iter(body.items()))
    require_admin(creds, f"volume_extension:snapshot_admin_actions:{name[3:]}")
    with controller(request).db.session() as session:
        snap = find_snapshot(session, creds, snapshot_id)
        if name == "os-force_delete":
            snap.status = "deleting"
        else:
            status = arg.get("status") if isinstance(arg, dict) else None
            if status not in STATUSES:
                raise BadRequest("Invalid input received: Must specify a valid status")
            snap.status = status
        snap.updated_at = utcnow()
        bump(session)
    return Response(status_code=202)


@router.get(S + "/{snapshot_id}/metadata")
def snapshot_metadata_get(snapshot_id: str, request: Request,
                          creds: Credentials = Depends(who)) -> dict:
    with controller(request).db.session() as session:
        return {"metadata": dict(find_snapshot(session, creds, snapshot_id).meta)}


@router.post(S + "/{snapshot_id}/metadata")
@router.put(S + "/{snapshot_id}/metadata")
def snapshot_metadata_post(snapshot_id: str, request: Request, body: dict = Depends(json_body),
                           creds: Credentials = Depends(who)) -> dict:
    if not isinstance(body.get("metadata"), dict):
        raise BadRequest("Malformed request body: 'metadata' is required.")
    given = metadata(body["metadata"])
    with controller(request).db.session() as session:
        snap = find_snapshot(session, creds, snapshot_id)
        require_member(creds, snap.project_id, "volume:update_snapshot_metadata")
        merged = given if request.method == "PUT" else {**snap.meta, **given}
        snap.meta, snap.updated_at = metadata(merged), utcnow()
        return {"metadata": dict(snap.meta)}


@router.delete(S + "/{snapshot_id}/metadata/{key}")
def snapshot_metadata_key_delete(snapshot_id: str, key: str, request: Request,
                                 creds: Credentials = Depends(who)) -> JSONResponse:
    with controller(request).db.session() as session:
        snap = find_snapshot(session, creds, snapshot_id)
        require_member(creds, snap.project_id, "volume:delete_snapshot_metadata")
        if key not in snap.meta:
            raise NotFound(f"Snapshot {snapshot_id} has no metadata with key {key[:64]}.")
        snap.meta = {k: v for k, v in snap.meta.items() if k != key}
        snap.updated_at = utcnow()
    return JSONResponse({}, status_code=200)
