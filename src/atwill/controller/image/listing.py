"""GET /v2/images: visibility, filters, sorting and marker pagination in one query."""

from __future__ import annotations

import operator
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from ...core import imagequery
from ...core.errors import BadRequest
from ...core.imagequery import ImageQuery
from ...core.policy import Credentials
from ..db.image import Image, ImageTag
from ..service import authorize, caller, controller
from . import views
from .common import listed, visible

router = APIRouter()

# Sort expressions never yield NULL, so the keyset comparisons below are total.
SORT_COLUMNS: dict[str, Any] = {
    "name": func.coalesce(Image.name, ""), "status": Image.status,
    "container_format": func.coalesce(Image.container_format, ""),
    "disk_format": func.coalesce(Image.disk_format, ""), "size": func.coalesce(Image.size, -1),
    "id": Image.id, "created_at": Image.created_at, "updated_at": Image.updated_at,
    "visibility": Image.visibility, "owner": func.coalesce(Image.owner, ""),
    "min_disk": Image.min_disk, "min_ram": Image.min_ram,
    "virtual_size": func.coalesce(Image.virtual_size, -1),
}
TIME_OPS = {"eq": operator.eq, "neq": operator.ne, "gt": operator.gt, "gte": operator.ge,
            "lt": operator.lt, "lte": operator.le}


@router.get("/v2/images")
def images_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "image:get_images")
    pairs = request.query_params.multi_items()
    query = imagequery.parse(pairs)
    with controller(request).db.session() as session:
        stmt = filtered(select(Image).where(
            listed(creds, query.visibility, query.member_status)), query)
        if query.marker:
            stmt = stmt.where(after(query.sort, marker_values(session, creds, query)))
        order = [SORT_COLUMNS[k].asc() if d == "asc" else SORT_COLUMNS[k].desc()
                 for k, d in query.sort]
        rows = session.scalars(stmt.order_by(*order).limit(query.limit + 1)).all()
        items = [views.image(image) for image in rows[: query.limit]]
    kept = imagequery.query_string(pairs)
    body: dict[str, Any] = {"images": items, "first": _link(kept),
                            "schema": "/v2/schemas/images"}
    # A next link only when another row exists, so a client never loops on a page.
    if len(rows) > query.limit:
        body["next"] = _link(kept + [("limit", str(query.limit)), ("marker", items[-1]["id"])])
    return body


def filtered(stmt: Select, query: ImageQuery) -> Select:
    for key, values in query.exact.items():
        stmt = stmt.where(getattr(Image, key).in_(values))
    for key, op, when in query.times:
        stmt = stmt.where(TIME_OPS[op](getattr(Image, key), when))
    if query.os_hidden is not None:
        stmt = stmt.where(Image.os_hidden == query.os_hidden)
    if query.protected is not None:
        stmt = stmt.where(Image.protected == query.protected)
    for tag in query.tags:
        stmt = stmt.where(exists(select(ImageTag.id).where(
            ImageTag.image_id == Image.id, ImageTag.value == tag)))
    if query.size_min is not None:
        stmt = stmt.where(Image.size >= query.size_min)
    if query.size_max is not None:
        stmt = stmt.where(Image.size <= query.size_max)
    for key, value in query.properties.items():
        stmt = stmt.where(Image.properties[key].as_string() == value)
    return stmt


def marker_values(session: Session, creds: Credentials, query: ImageQuery) -> list[Any]:
    """The sort values of the marker image, which the caller must be able to see."""
    stmt = select(*(SORT_COLUMNS[k] for k, _ in query.sort)).where(Image.id == query.marker)
    rule = visible(creds)
    row = session.execute(stmt if rule is None else stmt.where(rule)).first()
    if row is None:
        raise BadRequest(f"Invalid marker: image {query.marker} could not be found.")
    return list(row)


def after(sort: list[tuple[str, str]], values: list[Any]) -> ColumnElement:
    """Rows strictly after the marker in the (key, direction) order."""
    clauses = []
    for i, (key, direction) in enumerate(sort):
        column = SORT_COLUMNS[key]
        beyond = column > values[i] if direction == "asc" else column < values[i]
        ties = [SORT_COLUMNS[k] == values[j] for j, (k, _) in enumerate(sort[:i])]
        clauses.append(and_(*ties, beyond))
    return or_(*clauses)


def _link(pairs: list[tuple[str, str]]) -> str:
    return "/v2/images" + (f"?{urlencode(pairs)}" if pairs else "")
