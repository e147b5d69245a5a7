"""What the network handlers share: Neutron's error envelope, bodies, lists, retries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ...core import netquery
from ...core.errors import ApiError, BadRequest, Conflict
from ...core.pagination import page, parse_limit
from ...core.text import clean_name, shown
from ..revision import bump
from ..service import controller

T = TypeVar("T")
log = logging.getLogger("atwill.network")
DEFAULT_TYPES = {400: "HTTPBadRequest", 401: "HTTPUnauthorized", 403: "HTTPForbidden",
                 404: "HTTPNotFound", 405: "HTTPMethodNotAllowed", 409: "HTTPConflict",
                 413: "HTTPRequestEntityTooLarge", 415: "HTTPUnsupportedMediaType"}
ATTEMPTS = 12
# Neutron takes 255; atwill's project_id columns hold 64 (Keystone's ids are 32).
PROJECT_ID_LENGTH = 64


def neutron_error(err: ApiError) -> dict[str, Any]:
    kind = getattr(err, "kind", None) or DEFAULT_TYPES.get(err.status, "HTTPInternalServerError")
    return {"NeutronError": {"type": kind, "message": err.message, "detail": ""}}


def fault(cls: type[ApiError], kind: str, message: str) -> ApiError:
    """An error carrying Neutron's exception name (e.g. NetworkNotFound) as its type."""
    err = cls(message)
    err.kind = kind  # type: ignore[attr-defined]
    return err


def writable(data: dict[str, Any], allowed: set[str], what: str) -> dict[str, Any]:
    """Refuse attributes a resource does not have, or may not change, as Neutron does."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(f"Unrecognized attribute(s) {shown(', '.join(unknown))} for {what}.")
    return data


def text(data: dict[str, Any], key: str, default: str = "", limit: int = 255) -> str:
    """A name-like attribute: printable text of at most limit characters (no NUL, CR/LF,
    ESC: these reach the nodes' device names, logs and terminals)."""
    value = clean_name(data.get(key, default), key, limit)
    return default if value is None else value


def flag(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid input for {key}. Reason: '{value}' is not a valid "
                         "boolean value.")
    return value


def string_list(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"Invalid input for {key}. Reason: a list of strings is required.")
    return value


def owner(data: dict[str, Any], project_id: str | None) -> str:
    """The project a new resource belongs to: project_id/tenant_id (must agree) or the caller's."""
    # Any string Neutron would store (an admin may name a project Keystone does not know),
    # but a string: a list or object here used to be a TypeError.
    given = {clean_name(data.get(k), k, PROJECT_ID_LENGTH)
             for k in ("project_id", "tenant_id") if data.get(k) is not None}
    if len(given) > 1:
        raise BadRequest("Invalid input: project_id and tenant_id do not match.")
    chosen = given.pop() if given else project_id
    if not isinstance(chosen, str) or not chosen:
        raise BadRequest("Invalid input: a project_id is required.")
    return chosen


def params(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        out.setdefault(key, []).append(value)
    return out


def listing(request: Request, collection: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Filter, sort, page and trim converted items into Neutron's list envelope."""
    query = params(request)
    try:
        items = netquery.filtered(items, query)
        items = netquery.sorted_items(items, query.get("sort_key", []), query.get("sort_dir", []))
    except netquery.InvalidQuery as err:
        raise BadRequest(str(err)) from None
    limit = parse_limit(query.get("limit", [None])[-1])
    if limit == 0:
        limit = len(items) or 1
    chunk, next_marker = page(items, lambda i: i["id"], limit, query.get("marker", [None])[-1])
    fields = query.get("fields", [])
    out: dict[str, Any] = {collection: [netquery.selected(i, fields) for i in chunk]}
    if next_marker is not None:
        kept = [(k, v) for k, v in request.query_params.multi_items()
                if k not in ("limit", "marker")]
        kept += [("limit", str(limit)), ("marker", next_marker)]
        href = f"{controller(request).base_url}/network/v2.0/{collection_path(collection)}"
        out[f"{collection}_links"] = [{"rel": "next", "href": f"{href}?{urlencode(kept)}"}]
    return out


def collection_path(collection: str) -> str:
    return {"security_groups": "security-groups",
            "security_group_rules": "security-group-rules"}.get(collection, collection)


def one(request: Request, key: str, item: dict[str, Any]) -> dict[str, Any]:
    """{"network": {...}} trimmed to ?fields= when given."""
    return {key: netquery.selected(item, params(request).get("fields", []))}


def transaction(request: Request, work: Callable[[Session], T], changes: bool = True) -> T:
    """Run work in one transaction, retried when a concurrent writer took the same
    address, VNI or MAC (unique constraints) or held SQLite's lock; bumps the cluster
    revision with every change so agents re-read their desired state."""
    db = controller(request).db
    for attempt in range(ATTEMPTS):
        try:
            with db.session() as session:
                result = work(session)
                if changes:
                    bump(session, touched=True)
                return result
        except (IntegrityError, OperationalError) as err:
            if isinstance(err, OperationalError) and "locked" not in str(err).lower():
                raise
            log.debug("network transaction retry %d after %s", attempt + 1, err.orig)
            time.sleep(0.01 * (attempt + 1))
    raise fault(Conflict, "Conflict", "The request conflicted with concurrent changes; "
                "please retry.")
