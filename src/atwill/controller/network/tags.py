"""Tags on any standard resource: /v2.0/{collection}/{id}/tags[/{tag}]."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, NotFound
from ...core.policy import Credentials
from ...core.text import has_control, shown
from ..db.network import FloatingIP, Network, Port, Router, SecurityGroup, Subnet, SubnetPool
from ..service import caller, controller, json_body
from . import access
from .common import fault, transaction

router = APIRouter()
MODELS: dict[str, tuple[Any, str]] = {
    "networks": (Network, "network"), "subnets": (Subnet, "subnet"), "ports": (Port, "port"),
    "routers": (Router, "router"), "floatingips": (FloatingIP, "floatingip"),
    "security-groups": (SecurityGroup, "security_group"),
    "subnetpools": (SubnetPool, "subnetpool")}
BASE = "/v2.0/{collection}/{resource_id}/tags"
# Neutron's tag extension limits.
MAX_TAGS, MAX_TAG_LENGTH = 50, 60


def _find(session: Session, creds: Credentials, collection: str, resource_id: str,
          write: bool) -> Any:
    if collection not in MODELS:
        raise NotFound("The resource could not be found.")
    model, name = MODELS[collection]
    item = access.find(session, creds, model, resource_id, lock=write)
    if write:
        access.may_write(creds, f"network:update_{name}", item)
    return item


def _tag(tag: Any) -> str:
    """Neutron's tag: a non-empty string of at most 60 characters, no commas (the list
    filters split on them), no control characters."""
    if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_LENGTH or "," in tag or \
            has_control(tag):
        raise BadRequest(f"Invalid tag {shown(tag)}: a non-empty string of at most "
                         f"{MAX_TAG_LENGTH} characters without commas or control "
                         "characters is required.")
    return tag


def tag_list(tags: Any) -> list[str]:
    """A resource's whole tag set: at most MAX_TAGS valid tags, sorted, unique."""
    if not isinstance(tags, list):
        raise BadRequest("Invalid input: 'tags' must be a list.")
    wanted = sorted({_tag(t) for t in tags})
    _check_count(len(wanted))
    return wanted


def _check_count(count: int) -> None:
    if count > MAX_TAGS:
        raise BadRequest(f"The number of tags exceed the per-resource limit of {MAX_TAGS}.")


@router.get(BASE)
def tags_get(collection: str, resource_id: str, request: Request,
             creds: Credentials = Depends(caller)) -> dict:
    with controller(request).db.session() as session:
        return {"tags": list(_find(session, creds, collection, resource_id, False).tags)}


@router.get(BASE + "/{tag}")
def tag_get(collection: str, resource_id: str, tag: str, request: Request,
            creds: Credentials = Depends(caller)) -> Response:
    with controller(request).db.session() as session:
        if tag not in _find(session, creds, collection, resource_id, False).tags:
            raise fault(NotFound, "TagNotFound", f"Tag {tag} could not be found for "
                        f"{collection} {resource_id}.")
    return Response(status_code=204)


@router.put(BASE)
def tags_put(collection: str, resource_id: str, request: Request,
             body: dict = Depends(json_body), creds: Credentials = Depends(caller)) -> dict:
    wanted = tag_list(body.get("tags"))

    def work(session: Session) -> dict:
        item = _find(session, creds, collection, resource_id, True)
        item.tags = wanted
        item.touch()
        return {"tags": wanted}
    return transaction(request, work, changes=False)


@router.put(BASE + "/{tag}", status_code=201)
def tag_put(collection: str, resource_id: str, tag: str, request: Request,
            creds: Credentials = Depends(caller)) -> Response:
    _tag(tag)

    def work(session: Session) -> None:
        item = _find(session, creds, collection, resource_id, True)
        _check_count(len(set(item.tags) | {tag}))
        item.tags = sorted(set(item.tags) | {tag})
        item.touch()
    transaction(request, work, changes=False)
    return Response(status_code=201)


@router.delete(BASE)
@router.delete(BASE + "/{tag}")
def tags_delete(collection: str, resource_id: str, request: Request, tag: str | None = None,
                creds: Credentials = Depends(caller)) -> Response:
    def work(session: Session) -> None:
        item = _find(session, creds, collection, resource_id, True)
        if tag is not None and tag not in item.tags:
            raise fault(NotFound, "TagNotFound", f"Tag {tag} could not be found.")
        item.tags = [] if tag is None else [t for t in item.tags if t != tag]
        item.touch()
    transaction(request, work, changes=False)
    return Response(status_code=204)
