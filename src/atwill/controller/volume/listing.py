"""Volume and snapshot lists: Cinder's filters, sort, limit/marker and *_links."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from sqlalchemy import select

from ...core.errors import BadRequest
from ...core.microversion import Version
from ...core.pagination import page, parse_limit
from ...core.policy import Credentials
from ..db.volume import Volume, VolumeSnapshot
from ..service import controller
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


def ordered(items: list[Any], order: list[tuple[str, bool]]) -> list[Any]:
    for key, desc in reversed(order):
        items = sorted(items, key=lambda i, k=key: (getattr(i, k) is None,
                                                    getattr(i, k) or ""), reverse=desc)
    return items


def matches(item: Any, request: Request, meta_attr: str) -> bool:
    params = request.query_params
    for key in PLAIN_FILTERS:
        if key in params and hasattr(item, key) and getattr(item, key) != params[key]:
            return False
    like = params.get("name~")
    if like is not None and like.lower() not in (item.name or "").lower():
        return False
    bootable = query_bool(params.get("bootable"), "bootable")
    if bootable is not None and getattr(item, "bootable", bootable) != bootable:
        return False
    wanted = metadata_filter(params.get("metadata"))
    meta = getattr(item, meta_attr)
    return all(meta.get(k) == v for k, v in wanted.items())


def scoped(request: Request, creds: Credentials, model: Any) -> Any:
    params = request.query_params
    query = select(model)
    every = creds.reads_all and query_bool(params.get("all_tenants"), "all_tenants")
    if not every:
        return query.where(model.project_id == creds.project_id)
    if params.get("project_id"):
        return query.where(model.project_id == params["project_id"])
    return query


def paged(request: Request, items: list[Any], collection: str,
          render_page: Callable[[list[Any]], list[dict]], version: Version) -> dict:
    params = request.query_params
    limit = parse_limit(params.get("limit"))
    try:
        chunk, next_marker = page(items, lambda i: i.id, limit, params.get("marker"))
    except BadRequest:
        raise BadRequest(f"Marker {params.get('marker', '')[:64]} could not be "
                         "found.") from None
    out: dict[str, Any] = {collection: render_page(chunk)}
    if version >= "3.45" and query_bool(params.get("with_count"), "with_count"):
        out["count"] = len(items)
    if next_marker is not None:
        kept = [(k, v) for k, v in params.multi_items() if k not in ("limit", "marker")]
        kept += [("limit", str(limit)), ("marker", next_marker)]
        href = f"{base(request)}/v3/{collection}?{urlencode(kept)}"
        out[f"{collection}_links"] = [{"rel": "next", "href": href}]
    return out


def volumes(request: Request, creds: Credentials, version: Version, detail: bool) -> dict:
    with controller(request).db.session() as session:
        rows = session.scalars(scoped(request, creds, Volume)).all()
        items = ordered([v for v in rows if matches(v, request, "meta")], sort_order(request))
        if detail:
            return paged(request, items, "volumes",
                         lambda chunk: render(request, session, chunk, version, creds), version)
        return paged(request, items, "volumes",
                     lambda chunk: [volume_summary(request, v) for v in chunk], version)


def snapshots(request: Request, creds: Credentials, version: Version, detail: bool) -> dict:
    with controller(request).db.session() as session:
        rows = session.scalars(scoped(request, creds, VolumeSnapshot)).all()
        items = ordered([s for s in rows if matches(s, request, "meta")], sort_order(request))
        return paged(request, items, "snapshots",
                     lambda chunk: [snapshot_view(s, version, detail) for s in chunk], version)
