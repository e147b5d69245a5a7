"""/v3/types and their extra specs (Cinder's volume types; writes are admin-only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, Conflict, NotFound
from ...core.policy import Credentials
from ...core.text import clean_name
from ..db.base import utcnow
from ..db.volume import DEFAULT_TYPE, Volume, VolumeType
from ..service import controller, json_body, wrapped
from .common import body_bool, query_bool, require_admin, who
from .views import type_view

router = APIRouter()
T = "/v3/types"
MAX_SPECS = 64


def find_type(session: Session, ident: str) -> VolumeType:
    found = session.get(VolumeType, ident) or session.scalar(
        select(VolumeType).where(VolumeType.name == ident))
    if found is None:
        raise NotFound(f"Volume type {ident[:64]} could not be found.")
    return found


def default_type(session: Session) -> VolumeType:
    return find_type(session, DEFAULT_TYPE)


def _specs(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise BadRequest("Invalid input: 'extra_specs' must be an object.")
    if len(value) > MAX_SPECS:
        raise BadRequest(f"At most {MAX_SPECS} extra specs are allowed.")
    out = {}
    for key, item in value.items():
        clean_name(key, "extra spec key", 255)
        if not key or not isinstance(item, str | int | float | bool):
            raise BadRequest(f"Invalid extra spec {key[:64]!r}: keys and values must be "
                             "non-empty text of at most 255 characters.")
        out[key] = clean_name(str(item).lower() if isinstance(item, bool) else str(item),
                              "extra spec value", 255) or ""
    return out


@router.get(T)
def types_get(request: Request, creds: Credentials = Depends(who)) -> dict:
    raw = request.query_params.get("is_public")
    # Cinder: is_public=None (the CLI's default) means public and private alike.
    wanted = None if raw is None or raw.lower() == "none" else query_bool(raw, "is_public")
    with controller(request).db.session() as session:
        rows = session.scalars(select(VolumeType).order_by(VolumeType.created_at,
                                                           VolumeType.name)).all()
        shown = [t for t in rows if (t.is_public or creds.is_admin)
                 and (wanted is None or not creds.is_admin or t.is_public == wanted)]
        return {"volume_types": [type_view(t) for t in shown]}


@router.get(T + "/default")
def type_default_get(request: Request, _creds: Credentials = Depends(who)) -> dict:
    with controller(request).db.session() as session:
        return {"volume_type": type_view(default_type(session))}


@router.get(T + "/{type_id}")
def type_get(type_id: str, request: Request, creds: Credentials = Depends(who)) -> dict:
    with controller(request).db.session() as session:
        vtype = find_type(session, type_id)
        if not vtype.is_public and not creds.is_admin:
            raise NotFound(f"Volume type {type_id[:64]} could not be found.")
        return {"volume_type": type_view(vtype)}


@router.post(T)
def type_post(request: Request, body: dict = Depends(json_body),
              creds: Credentials = Depends(who)) -> dict:
    require_admin(creds, "volume_extension:types_manage")
    data = wrapped(body, "volume_type")
    name = clean_name(data.get("name"), "name", 255)
    if not name or not name.strip():
        raise BadRequest("Volume type name can not be empty.")
    public = body_bool(data.get("os-volume-type-access:is_public",
                                data.get("is_public", True)), "is_public")
    vtype = VolumeType(name=name.strip(), is_public=public,
                       description=clean_name(data.get("description"), "description", 255),
                       extra_specs=_specs(data.get("extra_specs") or {}))
    with controller(request).db.session() as session:
        if session.scalar(select(VolumeType).where(VolumeType.name == vtype.name)):
            raise Conflict(f"Volume Type {vtype.name} already exists.")
        session.add(vtype)
        session.flush()
        return {"volume_type": type_view(vtype)}


@router.put(T + "/{type_id}")
def type_put(type_id: str, request: Request, body: dict = Depends(json_body),
             creds: Credentials = Depends(who)) -> dict:
    require_admin(creds, "volume_extension:types_manage")
    data = wrapped(body, "volume_type")
    if not {"name", "description", "is_public"} & set(data):
        raise BadRequest("Specify volume type name, description, is_public or a combination "
                         "thereof.")
    with controller(request).db.session() as session:
        vtype = find_type(session, type_id)
        if "name" in data:
            name = (clean_name(data["name"], "name", 255) or "").strip()
            if not name:
                raise BadRequest("Volume type name can not be empty.")
            if vtype.name == DEFAULT_TYPE and name != DEFAULT_TYPE:
                raise BadRequest("The default volume type cannot be renamed.")
            clash = session.scalar(select(VolumeType).where(VolumeType.name == name))
            if clash is not None and clash.id != vtype.id:
                raise Conflict(f"Volume Type {name} already exists.")
            vtype.name = name
        if "description" in data:
            vtype.description = clean_name(data["description"], "description", 255)
        if "is_public" in data:
            vtype.is_public = body_bool(data["is_public"], "is_public")
        vtype.updated_at = utcnow()
        return {"volume_type": type_view(vtype, access_key=False)}


@router.delete(T + "/{type_id}", status_code=202)
def type_delete(type_id: str, request: Request, creds: Credentials = Depends(who)) -> Response:
    require_admin(creds, "volume_extension:types_manage")
    with controller(request).db.session() as session:
        vtype = find_type(session, type_id)
        if vtype.name == DEFAULT_TYPE:
            raise BadRequest("Default volume type can not be deleted.")
        if session.scalar(select(Volume.id).where(Volume.volume_type_id == vtype.id).limit(1)):
            raise BadRequest("Target volume type is still in use.")
        session.delete(vtype)
    return Response(status_code=202)


@router.get(T + "/{type_id}/extra_specs")
def specs_get(type_id: str, request: Request, creds: Credentials = Depends(who)) -> dict:
    with controller(request).db.session() as session:
        vtype = find_type(session, type_id)
        if not vtype.is_public and not creds.is_admin:
            raise NotFound(f"Volume type {type_id[:64]} could not be found.")
        return {"extra_specs": dict(vtype.extra_specs)}


@router.post(T + "/{type_id}/extra_specs")
def specs_post(type_id: str, request: Request, body: dict = Depends(json_body),
               creds: Credentials = Depends(who)) -> dict:
    require_admin(creds, "volume_extension:types_extra_specs:create")
    if not isinstance(body.get("extra_specs"), dict):
        raise BadRequest("Missing required element 'extra_specs' in request body.")
    specs = _specs(body["extra_specs"])
    with controller(request).db.session() as session:
        vtype = find_type(session, type_id)
        merged = {**vtype.extra_specs, **specs}
        _specs(merged)
        vtype.extra_specs, vtype.updated_at = merged, utcnow()
        return {"extra_specs": specs}


@router.get(T + "/{type_id}/extra_specs/{key}")
def spec_get(type_id: str, key: str, request: Request,
             creds: Credentials = Depends(who)) -> dict:
    with controller(request).db.session() as session:
        vtype = find_type(session, type_id)
        if key not in vtype.extra_specs or (not vtype.is_public and not creds.is_admin):
            raise NotFound(f"Volume Type {vtype.id} has no extra specs with key {key[:64]}.")
        return {key: vtype.extra_specs[key]}


@router.put(T + "/{type_id}/extra_specs/{key}")
def spec_put(type_id: str, key: str, request: Request, body: dict = Depends(json_body),
             creds: Credentials = Depends(who)) -> dict:
    require_admin(creds, "volume_extension:types_extra_specs:update")
    if len(body) != 1 or key not in body:
        raise BadRequest("Request body and URI mismatch")
    spec = _specs(body)
    with controller(request).db.session() as session:
        vtype = find_type(session, type_id)
        merged = {**vtype.extra_specs, **spec}
        _specs(merged)
        vtype.extra_specs, vtype.updated_at = merged, utcnow()
        return spec


@router.delete(T + "/{type_id}/extra_specs/{key}", status_code=202)
def spec_delete(type_id: str, key: str, request: Request,
                creds: Credentials = Depends(who)) -> Response:
    require_admin(creds, "volume_extension:types_extra_specs:delete")
    with controller(request).db.session() as session:
        vtype = find_type(session, type_id)
        if key not in vtype.extra_specs:
            raise NotFound(f"Volume Type {vtype.id} has no extra specs with key {key[:64]}.")
        vtype.extra_specs = {k: v for k, v in vtype.extra_specs.items() if k != key}
        vtype.updated_at = utcnow()
    return Response(status_code=202)
