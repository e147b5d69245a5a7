"""Neutron lists read one page from SQL: filters and sort_key on columns, limit/marker as
a keyset; only filters on computed attributes are judged in Python, in batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from sqlalchemy import JSON, Boolean, Integer, Select, false, func, or_
from sqlalchemy.orm import Session

from ...core import netquery
from ...core.errors import BadRequest
from ...core.pagination import parse_limit
from .. import sqlpage
from ..service import controller
from ..sqlpage import Key
from .common import collection_path, params

Convert = Callable[[Session, list[Any]], list[dict[str, Any]]]
# Neutron's attribute names that are not the column's own name.
ALIASES = {"tenant_id": "project_id", "router:external": "external",
           "provider:network_type": "network_type",
           "provider:physical_network": "physical_network",
           "provider:segmentation_id": "segmentation_id"}
NULLS = ("", "None", "null")
# limit=0 asks for everything, as Neutron's unlimited page.
UNLIMITED = 10**9


def columns(model: Any, computed: tuple[str, ...] = ()) -> dict[str, Any]:
    """API attribute -> column, for the attributes a row stores as shown."""
    table = model.__table__.columns
    out = {c.key: getattr(model, c.key) for c in table
           if not isinstance(c.type, JSON) and c.key not in computed
           and c.key not in ("created_at", "updated_at")}
    out.update({api: getattr(model, col) for api, col in ALIASES.items() if col in out})
    # Columns the API shows under another name only (router:external, binding:host_id).
    for hidden in {*ALIASES.values(), "host_id"} - {"project_id"}:
        out.pop(hidden, None)
    return out


def sql_listing(request: Request, session: Session, collection: str, stmt: Select,
                model: Any, convert: Convert, computed: tuple[str, ...] = ()) -> dict[str, Any]:
    """Neutron's list envelope for one page of stmt, filtered, sorted and paged in SQL."""
    query = params(request)
    cols = columns(model, computed)
    stmt = stmt.order_by(None)
    python_keys = []
    for key, values in query.items():
        if key in netquery.PAGING or key in netquery.TAG_FILTERS:
            continue
        if key in cols:
            stmt = stmt.where(_matches(cols[key], values))
        else:
            python_keys.append(key)
    keys = sort_keys(model, cols, query) + [Key(model.created_at), Key(model.id)]
    accept = _accept(session, convert, query) if python_keys or set(
        netquery.TAG_FILTERS) & set(query) else None
    limit = parse_limit(query.get("limit", [None])[-1]) or UNLIMITED
    start = None
    marker = query.get("marker", [None])[-1]
    if marker is not None:
        start = sqlpage.marker_values(session, stmt, keys, model.id == marker)
        if start is None:
            raise BadRequest(f"marker [{marker}] not found")
    rows, more = sqlpage.rows(session, stmt, keys, limit, start, accept)
    fields = query.get("fields", [])
    out: dict[str, Any] = {collection: [netquery.selected(i, fields)
                                        for i in convert(session, rows)]}
    if more and rows:
        kept = [(k, v) for k, v in request.query_params.multi_items()
                if k not in ("limit", "marker")]
        kept += [("limit", str(limit)), ("marker", rows[-1].id)]
        href = f"{controller(request).base_url}/network/v2.0/{collection_path(collection)}"
        out[f"{collection}_links"] = [{"rel": "next", "href": f"{href}?{urlencode(kept)}"}]
    return out


def _matches(column: Any, values: list[str]) -> Any:
    """Any of values, as netquery compares them: booleans parsed, None as '' or 'null'."""
    if isinstance(column.type, Boolean):
        wanted = []
        for value in values:
            lowered = value.lower()
            if lowered not in netquery.TRUE | netquery.FALSE:
                raise BadRequest(f"Invalid input for filter: '{value}' is not a boolean.")
            wanted.append(lowered in netquery.TRUE)
        return column.in_(wanted)
    clauses = [column.is_(None)] if any(v in NULLS for v in values) else []
    if isinstance(column.type, Integer):
        numbers = [int(v) for v in values if v.lstrip("-").isdigit() and str(int(v)) == v]
        clauses.append(column.in_(numbers) if numbers else false())
    else:
        clauses.append(column.in_(values))
    return or_(*clauses)


def sort_keys(model: Any, cols: dict[str, Any], query: dict[str, list[str]]) -> list[Key]:
    """Neutron's sort_key/sort_dir pairs (a missing direction is asc), NULLs first."""
    keys, dirs = query.get("sort_key", []), query.get("sort_dir", [])
    if len(dirs) > len(keys):
        raise BadRequest("The number of sort_keys and sort_dirs must be the same.")
    for direction in dirs:
        if direction not in ("asc", "desc"):
            raise BadRequest(f"{direction} is an invalid value for sort_dir, valid "
                             "values are 'asc' and 'desc'.")
    sortable = {**cols, "created_at": model.created_at, "updated_at": model.updated_at}
    out = []
    for i, key in enumerate(keys):
        if key not in sortable:
            raise BadRequest(f"{key} is an invalid attribute for sort_key.")
        out.append(Key(_not_null(sortable[key]), desc=i < len(dirs) and dirs[i] == "desc"))
    return out


def _not_null(column: Any) -> Any:
    if not getattr(column.expression, "nullable", False):
        return column
    if isinstance(column.type, Integer):
        return func.coalesce(column, -1)
    return func.coalesce(column, "")


def _accept(session: Session, convert: Convert, query: dict[str, list[str]]) -> Any:
    def accept(row: Any) -> bool:
        try:
            return bool(netquery.filtered(convert(session, [row]), query))
        except netquery.InvalidQuery as err:
            raise BadRequest(str(err)) from None
    return accept
