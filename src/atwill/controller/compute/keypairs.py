"""/os-keypairs: per-user SSH and x509 keys; import, generate (< 2.92), list, show, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import keypairs as keys
from ...core.errors import BadRequest, Conflict, NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.base import iso
from ..db.compute import Keypair
from ..db.models import User
from ..service import authorize, caller, controller, json_body, wrapped
from ..sqlpage import Key
from .common import api_version, sql_paginated
from .usage import check

router = APIRouter()


@router.get("/v2.1/os-keypairs")
def keypairs_get(request: Request, creds: Credentials = Depends(caller),
                 version: Version = Depends(api_version)) -> dict:
    user_id = _target(request, creds, version, "compute:keypairs:list")
    stmt = select(Keypair).where(Keypair.user_id == user_id)
    more: dict[str, Any] = {}
    with controller(request).db.session() as session:
        if version >= "2.35":
            found, more = sql_paginated(request, session, stmt, [Key(Keypair.name)],
                                        Keypair.name, "os-keypairs", "keypairs_links",
                                        marker_of=lambda k: k.name)
        else:
            found = list(session.scalars(stmt.order_by(Keypair.name)))
    return {"keypairs": [{"keypair": _summary(k, version)} for k in found], **more}


@router.get("/v2.1/os-keypairs/{name}")
def keypair_get(name: str, request: Request, creds: Credentials = Depends(caller),
                version: Version = Depends(api_version)) -> dict:
    user_id = _target(request, creds, version, "compute:keypairs:show")
    with controller(request).db.session() as session:
        keypair = _get(session, user_id, name)
    return {"keypair": {**_summary(keypair, version), "user_id": keypair.user_id,
                        "id": keypair.id, "created_at": iso(keypair.created_at),
                        "deleted": False, "deleted_at": None, "updated_at": None}}


@router.post("/v2.1/os-keypairs")
def keypairs_post(request: Request, body: dict = Depends(json_body),
                  creds: Credentials = Depends(caller),
                  version: Version = Depends(api_version)) -> JSONResponse:
    data = wrapped(body, "keypair")
    _check_keys(data, version)
    user_id = data.get("user_id") or creds.user_id
    authorize(creds, "compute:keypairs:create", user_id=user_id)
    name, key_type, public_key = _parse(data, version)
    generated = None
    if public_key is None and key_type == "x509":
        generated = keys.generate_x509(user_id)
        public_key = generated.public_key
    elif public_key is None:
        generated = keys.generate(comment=f"Generated-by-atwill-{name}".replace(" ", "-"))
        public_key = generated.public_key
    fingerprint = _fingerprint(key_type, public_key)
    with controller(request).db.session() as session:
        if session.get(User, user_id) is None:
            raise BadRequest(f"User {user_id} does not exist.")
        if session.scalar(select(Keypair.id).where(Keypair.user_id == user_id,
                                                   Keypair.name == name)):
            raise Conflict(f"Key pair '{name}' already exists.")
        check(session, creds.project_id or "", user_id, "key_pairs")
        keypair = Keypair(user_id=user_id, name=name, type=key_type, public_key=public_key,
                          fingerprint=fingerprint)
        session.add(keypair)
        session.flush()
        out = {**_summary(keypair, version), "user_id": user_id}
    if generated is not None:
        out["private_key"] = generated.private_key
    return JSONResponse({"keypair": out}, status_code=201 if version >= "2.2" else 200)


@router.delete("/v2.1/os-keypairs/{name}")
def keypair_delete(name: str, request: Request, creds: Credentials = Depends(caller),
                   version: Version = Depends(api_version)) -> Response:
    user_id = _target(request, creds, version, "compute:keypairs:delete")
    with controller(request).db.session() as session:
        session.delete(_get(session, user_id, name))
    return Response(status_code=204 if version >= "2.2" else 202)


def _target(request: Request, creds: Credentials, version: Version, operation: str) -> str:
    """Whose keypairs: ?user_id= (from 2.10, others' only for admins) or the caller's."""
    user_id = request.query_params.get("user_id") if version >= "2.10" else None
    user_id = user_id or creds.user_id
    authorize(creds, operation, user_id=user_id)
    return user_id


def _get(session: Session, user_id: str, name: str) -> Keypair:
    keypair = session.scalar(select(Keypair).where(Keypair.user_id == user_id,
                                                   Keypair.name == name))
    if keypair is None:
        raise NotFound(f"Keypair {name} not found for user {user_id}.")
    return keypair


def _summary(keypair: Keypair, version: Version) -> dict[str, Any]:
    out = {"name": keypair.name, "public_key": keypair.public_key,
           "fingerprint": keypair.fingerprint}
    if version >= "2.2":
        out["type"] = keypair.type
    return out


def _check_keys(data: dict[str, Any], version: Version) -> None:
    allowed = {"name", "public_key"}
    allowed |= {"type"} if version >= "2.2" else set()
    allowed |= {"user_id"} if version >= "2.10" else set()
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(f"Invalid input for keypair at microversion {version}: additional "
                         f"properties are not allowed ({', '.join(unknown)} were unexpected).")
    if "user_id" in data and not isinstance(data["user_id"], str):
        raise BadRequest("Invalid input for field/attribute user_id: a string is required.")


def _parse(data: dict[str, Any], version: Version) -> tuple[str, str, str | None]:
    try:
        name = keys.check_name(data.get("name"), allow_at=version >= "2.92")
    except keys.InvalidKey as err:
        raise BadRequest(str(err)) from None
    key_type = data.get("type", "ssh")
    if key_type not in keys.KEY_TYPES:
        raise BadRequest(f"Invalid input for field/attribute type: {key_type!r} is not one "
                         f"of {', '.join(keys.KEY_TYPES)}.")
    public_key = data.get("public_key")
    if public_key is None:
        if version >= "2.92":
            raise BadRequest("Invalid input: 'public_key' is required from microversion "
                             "2.92; the server no longer generates keys.")
    elif not isinstance(public_key, str):
        raise BadRequest("Invalid input for field/attribute public_key: a string is required.")
    return name, key_type, public_key


def _fingerprint(key_type: str, public_key: str) -> str:
    try:
        return keys.fingerprint(key_type, public_key)
    except keys.InvalidKey as err:
        raise BadRequest(str(err)) from None
