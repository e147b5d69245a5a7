"""What the compute handlers share: Nova's error envelope, microversions, links, paging."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from sqlalchemy import Select
from sqlalchemy.orm import Session

from ...core import microversion
from ...core.errors import ApiError, BadRequest, NotFound
from ...core.microversion import Version
from ...core.pagination import page, parse_limit
from .. import sqlpage
from ..microversion_middleware import MicroversionMiddleware
from ..service import controller
from ..sqlpage import Key

# Nova's Fault names by status; anything else is a computeFault.
FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               405: "badMethod", 409: "conflictingRequest", 413: "overLimit",
               415: "badMediaType", 429: "overLimit", 501: "notImplemented",
               503: "serviceUnavailable"}
VERSION_STATE = "compute_version"


def nova_error(err: ApiError) -> dict[str, Any]:
    return {FAULT_NAMES.get(err.status, "computeFault"): {"code": err.status,
                                                          "message": err.message}}


class Microversions(MicroversionMiddleware):
    """Parse the requested compute microversion once; echo it on every response."""

    state_key, minimum = VERSION_STATE, microversion.MIN

    def parse(self, headers: dict[str, str]) -> Version:
        return microversion.requested(headers)

    def echo(self, version: Version) -> list[tuple[bytes, bytes]]:
        return [(b"openstack-api-version", f"compute {version}".encode()),
                (b"x-openstack-nova-api-version", str(version).encode()),
                (b"vary", b"OpenStack-API-Version, X-OpenStack-Nova-API-Version")]

    def render(self, err: ApiError) -> dict[str, Any]:
        return nova_error(err)


def api_version(request: Request) -> Version:
    """The microversion of this request (a FastAPI dependency)."""
    return request.scope["state"][VERSION_STATE]


def at_least(version: Version, minimum: str) -> bool:
    return version >= minimum


def require(version: Version, minimum: str, maximum: str | None = None) -> None:
    """Nova answers 404 for a method that does not exist at the requested version."""
    if not version >= minimum or (maximum is not None and version >= _next(maximum)):
        raise NotFound(f"The resource could not be found at microversion {version}.")


def _next(text: str) -> Version:
    parsed = Version.parse(text)
    return Version(parsed.major, parsed.minor + 1)


def base(request: Request) -> str:
    return controller(request).base_url + "/compute"


def links(request: Request, collection: str, ident: str) -> list[dict[str, str]]:
    root = base(request)
    return [{"rel": "self", "href": f"{root}/v2.1/{collection}/{ident}"},
            {"rel": "bookmark", "href": f"{root}/{collection}/{ident}"}]


def paginated(request: Request, items: list, key: Any, path: str,
              links_key: str) -> tuple[list, dict[str, Any]]:
    """One page of items plus {links_key: [next]} when more remain (else {})."""
    params = request.query_params
    limit = parse_limit(params.get("limit"))
    chunk, next_marker = page(items, key, limit, params.get("marker"))
    if next_marker is None:
        return chunk, {}
    query = [(k, v) for k, v in params.multi_items() if k not in ("limit", "marker")]
    query += [("limit", str(limit)), ("marker", next_marker)]
    href = f"{base(request)}/v2.1/{path}?{urlencode(query)}"
    return chunk, {links_key: [{"rel": "next", "href": href}]}


def sql_paginated(request: Request, session: Session, stmt: Select, keys: list[Key],
                  ident: Any, path: str, links_key: str,
                  accept: Any = None, marker_of: Any = None) -> tuple[list, dict[str, Any]]:
    """paginated(), read from SQL: only the page (and one row to know more remain).

    ident is the column a marker names (or marker -> where clause); marker_of gives a
    row's marker (its id)."""
    params = request.query_params
    limit = parse_limit(params.get("limit"))
    start = None
    if params.get("marker") is not None:
        where = ident(params["marker"]) if callable(ident) else ident == params["marker"]
        start = sqlpage.marker_values(session, stmt, keys, where)
        if start is None:
            raise BadRequest(f"marker [{params['marker']}] not found")
    chunk, more = sqlpage.rows(session, stmt, keys, limit, start, accept)
    if not (more and chunk):
        return chunk, {}
    query = [(k, v) for k, v in params.multi_items() if k not in ("limit", "marker")]
    last = chunk[-1]
    query += [("limit", str(limit)), ("marker", str(marker_of(last) if marker_of else last.id))]
    href = f"{base(request)}/v2.1/{path}?{urlencode(query)}"
    return chunk, {links_key: [{"rel": "next", "href": href}]}


def query_bool(request: Request, name: str) -> bool | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "t", "y", "on"):
        return True
    if lowered in ("false", "0", "no", "f", "n", "off"):
        return False
    raise BadRequest(f"Invalid value for query parameter {name}: {value!r} is not a boolean.")


def query_int(request: Request, name: str, minimum: int = 0) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"Invalid value for query parameter {name}: {value!r} is not "
                         "an integer.") from None
    if number < minimum:
        raise BadRequest(f"Invalid value for query parameter {name}: it must be >= {minimum}.")
    return number
