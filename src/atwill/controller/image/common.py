"""What the image handlers share: error shape, visibility rules, lookups, bodies."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlalchemy.orm import Session

from ...core import json_edge, jsonpatch
from ...core.errors import ApiError, BadRequest, NotFound, UnsupportedMediaType
from ...core.policy import Credentials
from ..db.image import Image, ImageMember
from ..service import controller, read_bytes


def image_error(err: ApiError) -> dict[str, Any]:
    """{"error": {...}} with a message: what openstacksdk and OSC print for a failure."""
    return {"error": {"code": err.status, "title": err.title, "message": err.message}}


def member_of(creds: Credentials, statuses: tuple[str, ...] | None = None) -> ColumnElement:
    """The image is shared with the caller's project (in one of statuses, if given)."""
    if creds.project_id is None:
        return false()
    clause = and_(ImageMember.image_id == Image.id, ImageMember.member_id == creds.project_id)
    if statuses is not None:
        clause = and_(clause, ImageMember.status.in_(statuses))
    return and_(Image.visibility == "shared", exists(select(ImageMember.id).where(clause)))


def owned(creds: Credentials) -> ColumnElement:
    return false() if creds.project_id is None else Image.owner == creds.project_id


def visible(creds: Credentials) -> ColumnElement | None:
    """Images the caller may see one by one (None: all of them, for admins)."""
    if creds.reads_all:
        return None
    return or_(owned(creds), Image.visibility.in_(("public", "community")), member_of(creds))


def listed(creds: Credentials, visibility: str | None, member_status: str) -> ColumnElement:
    """Images a list shows: Glance's rules, never another project's private images."""
    statuses = None if member_status == "all" else (member_status,)
    if creds.reads_all:
        return Image.visibility == visibility if visibility not in (None, "all") else \
            Image.id.is_not(None)
    if visibility == "public":
        return Image.visibility == "public"
    if visibility == "community":
        return Image.visibility == "community"
    if visibility == "private":
        return and_(Image.visibility == "private", owned(creds))
    if visibility == "shared":
        return and_(Image.visibility == "shared", or_(owned(creds), member_of(creds, statuses)))
    shown = or_(owned(creds), Image.visibility == "public", member_of(creds, statuses))
    return or_(shown, Image.visibility == "community") if visibility == "all" else shown


def find_image(session: Session, creds: Credentials, image_id: str,
               lock: bool = False) -> Image:
    """The image if the caller may see it; 404 (never 403) for invisible ones."""
    query = select(Image).where(Image.id == image_id)
    rule = visible(creds)
    if rule is not None:
        query = query.where(rule)
    if lock:
        query = query.with_for_update()
    image = session.scalar(query)
    if image is None:
        raise NotFound(f"No image found with ID {image_id}")
    return image


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def patch_body(request: Request) -> list[dict[str, Any]]:
    """A JSON-patch document of either of Glance's dialects, as RFC 6902 operations."""
    kind = media_type(request)
    if kind not in jsonpatch.MEDIA_TYPES:
        allowed = ", ".join(sorted(jsonpatch.MEDIA_TYPES))
        raise UnsupportedMediaType(f"Image PATCH expects Content-Type one of: {allowed}",
                                   headers={"Accept-Patch": allowed})
    raw = await read_bytes(request, controller(request).settings.max_request_body)
    body = json_edge.loads(raw)
    try:
        ops = jsonpatch.parse(body, kind)
    except jsonpatch.PatchError as err:
        raise BadRequest(str(err)) from None
    request.state.patch_dialect = kind
    return ops
