"""/servers/{id}/tags (2.26): list, replace, add, check and remove a server's tags."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from ...core import servertags
from ...core.errors import BadRequest, NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.models import Instance
from ..servers import builds, instance_state
from ..service import authorize, caller, controller, json_body
from .common import api_version, base, require

router = APIRouter()
BASE = "/v2.1/servers/{server_id}/tags"
# Nova changes tags only in these states (409 otherwise, e.g. while building).
TAGGABLE = frozenset({"active", "paused", "suspended", "stopped"})


def _server(session: Session, server_id: str, creds: Credentials, version: Version,
            change: str | None = None) -> Instance:
    require(version, "2.26")
    inst = builds.get(session, server_id, creds)
    if change is None:
        authorize(creds, "compute:servers:show", project_id=inst.project_id)
        return inst
    authorize(creds, "compute:servers:update", project_id=inst.project_id)
    if inst.vm_state not in TAGGABLE:
        raise instance_state.refused(inst, change, "vm_state", inst.vm_state)
    return inst


@router.get(BASE)
def tags_get(server_id: str, request: Request, creds: Credentials = Depends(caller),
             version: Version = Depends(api_version)) -> dict:
    with controller(request).db.session() as session:
        return {"tags": list(_server(session, server_id, creds, version).tags or [])}


@router.put(BASE)
def tags_put(server_id: str, request: Request, body: dict = Depends(json_body),
             creds: Credentials = Depends(caller),
             version: Version = Depends(api_version)) -> dict:
    require(version, "2.26")
    if set(body) != {"tags"}:
        raise BadRequest("Invalid input: the body must be {\"tags\": [...]} and nothing else.")
    new = servertags.check_tags(body["tags"])
    with controller(request).db.session() as session:
        inst = _server(session, server_id, creds, version, "update tags")
        inst.tags = new
        return {"tags": new}


@router.delete(BASE)
def tags_delete(server_id: str, request: Request, creds: Credentials = Depends(caller),
                version: Version = Depends(api_version)) -> Response:
    with controller(request).db.session() as session:
        _server(session, server_id, creds, version, "delete tags").tags = []
    return Response(status_code=204)


@router.get(BASE + "/{tag}")
def tag_get(server_id: str, tag: str, request: Request, creds: Credentials = Depends(caller),
            version: Version = Depends(api_version)) -> Response:
    with controller(request).db.session() as session:
        if tag not in (_server(session, server_id, creds, version).tags or []):
            raise NotFound(f"Server {server_id} has no tag '{tag}'")
    return Response(status_code=204)


@router.put(BASE + "/{tag}")
def tag_put(server_id: str, tag: str, request: Request, creds: Credentials = Depends(caller),
            version: Version = Depends(api_version)) -> Response:
    with controller(request).db.session() as session:
        inst = _server(session, server_id, creds, version, "update tag")
        servertags.check_tag(tag)
        have = list(inst.tags or [])
        if len(have) >= servertags.MAX_TAGS:
            raise BadRequest("The number of tags exceeded the per-server limit "
                             f"{servertags.MAX_TAGS}")
        if tag in have:
            return Response(status_code=204)
        inst.tags = [*have, tag]
        location = f"{base(request)}/v2.1/servers/{inst.id}/tags/{quote(tag, safe='')}"
    return Response(status_code=201, headers={"Location": location})


@router.delete(BASE + "/{tag}")
def tag_delete(server_id: str, tag: str, request: Request,
               creds: Credentials = Depends(caller),
               version: Version = Depends(api_version)) -> Response:
    with controller(request).db.session() as session:
        inst = _server(session, server_id, creds, version, "delete tag")
        if tag not in (inst.tags or []):
            raise NotFound(f"Instance {inst.id} has no tag '{tag}'")
        inst.tags = [t for t in inst.tags if t != tag]
    return Response(status_code=204)
