"""Volume and snapshot lists: Cinder's filters, sort, limit/marker and *_links."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest
from ...core.microversion import Version
from ...core.pagination import parse_limit
from ...core.policy import Credentials
from .. import sqlpage
from ..db.volume import Volume, VolumeSnapshot
from ..service import controller
from ..sqlpage import Key
from .access import render
from .common import base, query_bool
from .views import snapshot_view, volume_summary

SORT_KEYS = ("created_at", "updated_at", "id", "name", "size", "status")
PLAIN_FILTERS = ("name", "status", "availability_zone", "volume_id")


def metadata_filter(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        value = ast.literal_eval(text[:4096])
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise BadRequest("Invalid filters metadata are found in query options.")
    return {str(k): str(v) for k, v in value.items()}


def sort_order(request: Request) -> list[tuple[str, bool]]:
    """[(key, descending)], from sort=k:dir,... or sort_key/sort_dir; created_at desc."""
    params = request.query_params
    pairs = []
    if params.get("sort"):
        for part in params["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            pairs.append((key, direction or "desc"))
    elif params.get("sort_key"):
        pairs.append((params["sort_key"], params.get("sort_dir", "desc")))
    out = []
    for key, direction in pairs:
        if key not in SORT_KEYS or direction.lower() not in ("asc", "desc"):
            raise BadRequest(f"Invalid input received: Invalid sort key or direction "
                             f"'{key[:64]}:{direction[:8]}'.")
        out.append((key, direction.lower() == "desc"))
    return out or [("created_at", True), ("id", True)]


def keys(model: Any, order: list[tuple[str, bool]]) -> list[Key]:
    """The sort order as SQL keys; NULL names sort as '' and the id breaks ties."""
    out = [Key(func.coalesce(getattr(model, k), model.created_at) if k == "updated_at"
               else func.coalesce(getattr(model, k), "") if k == "name" else getattr(model, k),
               desc=desc) for k, desc in order]
    return out if order[-1][0] == "id" else [*out, Key(model.id, desc=True)]


def filtered(request: Request, stmt: Select, model: Any) -> Select:
    """Cinder's plain, name~ and bootable filters, judged by SQL."""
    params = request.query_params
    for key in PLAIN_FILTERS:
        if key in params and hasattr(model, key):
            stmt = stmt.where(getattr(model, key) == params[key])
    like = params.get("name~")
    if like is not None:
        stmt = stmt.where(func.lower(func.coalesce(model.name, "")).contains(
            like.lower(), autoescape=True))
    bootable = query_bool(params.get("bootable"), "bootable")
    if bootable is not None and hasattr(model, "bootable"):
        stmt = stmt.where(model.bootable.is_(bootable))
    return stmt


def metadata_accept(request: Request) -> Callable[[Any], bool] | None:
    """The metadata filter (a JSON column), judged in Python; None without one."""
    wanted = metadata_filter(request.query_params.get("metadata"))
    if not wanted:
        return None
    return lambda item: all(item.meta.get(k) == v for k, v in wanted.items())


def scoped(request: Request, creds: Credentials, model: Any) -> Any:
    params = request.query_params
    query = select(model)
    every = creds.reads_all and query_bool(params.get("all_tenants"), "all_tenants")
    if not every:
        return query.where(model.project_id == creds.project_id)
    if params.get("project_id"):
        return query.where(model.project_id == params["project_id"])
    return query


def paged(request: Request, session: Session, stmt: Select, model: Any, collection: str,
          render_page: Callable[[list[Any]], list[dict]], version: Version) -> dict:
    """One page of stmt read from SQL, with Cinder's count and next link."""
    params = request.query_params
    limit = parse_limit(params.get("limit"))
    stmt = filtered(request, stmt, model)
    order = keys(model, sort_order(request))
    accept = metadata_accept(request)
    start = None
    if params.get("marker") is not None:
        start = sqlpage.marker_values(session, stmt, order,
                                      model.id == params["marker"])
        if start is None:
            raise BadRequest(f"Marker {params.get('marker', '')[:64]} could not be found.")
    chunk, more = sqlpage.rows(session, stmt, order, limit, start, accept)
    out: dict[str, Any] = {collection: render_page(chunk)}
    if version >= "3.45" and query_bool(params.get("with_count"), "with_count"):
        out["count"] = _count(session, stmt, accept)
    if more and chunk:
        kept = [(k, v) for k, v in params.multi_items() if k not in ("limit", "marker")]
        kept += [("limit", str(limit)), ("marker", chunk[-1].id)]
        href = f"{base(request)}/v3/{collection}?{urlencode(kept)}"
        out[f"{collection}_links"] = [{"rel": "next", "href": href}]
    return out


def _count(session: Session, stmt: Select, accept: Callable[[Any], bool] | None) -> int:
    if accept is None:
        return session.scalar(select(func.count()).select_from(
            stmt.order_by(None).subquery())) or 0
    return sum(1 for row in session.scalars(stmt) if accept(row))


def volumes(request: Request, creds: Credentials, version: Version, detail: bool) -> dict:
    with controller(request).db.session() as session:
        stmt = scoped(request, creds, Volume)
        if detail:
            return paged(request, session, stmt, Volume, "volumes",
                         lambda chunk: render(request, session, chunk, version, creds), version)
        return paged(request, session, stmt, Volume, "volumes",
                     lambda chunk: [volume_summary(request, v) for v in chunk], version)


def snapshots(request: Request, creds: Credentials, version: Version, detail: bool) -> dict:
    with controller(request).db.session() as session:
        return paged(request, session, scoped(request, creds, VolumeSnapshot), VolumeSnapshot,
                     "snapshots",
                     lambda chunk: [snapshot_view(s, version, detail) for s in chunk], version)
