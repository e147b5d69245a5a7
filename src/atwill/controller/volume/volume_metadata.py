"""/v3/volumes/{id}/metadata: show, replace, merge, and one key at a time."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ...core.errors import BadRequest, NotFound
from ...core.policy import Credentials
from ..db.base import utcnow
from ..service import controller, json_body
from .access import find_volume
from .common import require_member, who
from .metadata_input import metadata

router = APIRouter()
M = "/v3/volumes/{volume_id}/metadata"


def _body_metadata(body: dict) -> dict[str, str]:
    if not isinstance(body.get("metadata"), dict):
        raise BadRequest("Malformed request body: 'metadata' is required.")
    return metadata(body["metadata"])


@router.get(M)
def metadata_get(volume_id: str, request: Request, creds: Credentials = Depends(who)) -> dict:
    with controller(request).db.session() as session:
        return {"metadata": dict(find_volume(session, creds, volume_id).meta)}


@router.post(M)
def metadata_post(volume_id: str, request: Request, body: dict = Depends(json_body),
                  creds: Credentials = Depends(who)) -> dict:
    given = _body_metadata(body)
    with controller(request).db.session() as session:
        vol = find_volume(session, creds, volume_id, lock=True)
        require_member(creds, vol.project_id, "volume:update_volume_metadata")
        vol.meta, vol.updated_at = metadata({**vol.meta, **given}), utcnow()
        return {"metadata": dict(vol.meta)}


@router.put(M)
def metadata_put(volume_id: str, request: Request, body: dict = Depends(json_body),
                 creds: Credentials = Depends(who)) -> dict:
    given = _body_metadata(body)
    with controller(request).db.session() as session:
        vol = find_volume(session, creds, volume_id, lock=True)
        require_member(creds, vol.project_id, "volume:update_volume_metadata")
        vol.meta, vol.updated_at = given, utcnow()
        return {"metadata": dict(vol.meta)}


@router.get(M + "/{key}")
def metadata_key_get(volume_id: str, key: str, request: Request,
                     creds: Credentials = Depends(who)) -> dict:
    with controller(request).db.session() as session:
        meta = find_volume(session, creds, volume_id).meta
        if key not in meta:
            raise NotFound(f"Volume {volume_id} has no metadata with key {key[:64]}.")
        return {"meta": {key: meta[key]}}


@router.put(M + "/{key}")
def metadata_key_put(volume_id: str, key: str, request: Request,
                     body: dict = Depends(json_body), creds: Credentials = Depends(who)) -> dict:
    meta = body.get("meta")
    if not isinstance(meta, dict) or list(meta) != [key]:
        raise BadRequest("Request body and URI mismatch")
    given = metadata(meta)
    with controller(request).db.session() as session:
        vol = find_volume(session, creds, volume_id, lock=True)
        require_member(creds, vol.project_id, "volume:update_volume_metadata")
        vol.meta, vol.updated_at = metadata({**vol.meta, **given}), utcnow()
        return {"meta": given}


@router.delete(M + "/{key}")
def metadata_key_delete(volume_id: str, key: str, request: Request,
                        creds: Credentials = Depends(who)) -> JSONResponse:
    with controller(request).db.session() as session:
        vol = find_volume(session, creds, volume_id, lock=True)
        require_member(creds, vol.project_id, "volume:delete_volume_metadata")
        if key not in vol.meta:
            raise NotFound(f"Volume {volume_id} has no metadata with key {key[:64]}.")
        vol.meta = {k: v for k, v in vol.meta.items() if k != key}
        vol.updated_at = utcnow()
    return JSONResponse({}, status_code=200)
