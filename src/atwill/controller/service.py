"""What every API service shares: app construction, error rendering, auth, bodies."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core import json_edge
from ..core.errors import (
    BY_STATUS,
    ApiError,
    BadRequest,
    Conflict,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
)
from ..core.policy import Credentials, enforce
from ..core.text import shown
from .context import Controller
from .limits import BodyLimits

JSON = ("application/json",)

log = logging.getLogger("atwill.api")

ErrorRenderer = Callable[[ApiError], dict[str, Any]]


def keystone_error(err: ApiError) -> dict[str, Any]:
    return {"error": {"code": err.status, "message": err.message, "title": err.title}}


def make_service_app(ctl: Controller, render: ErrorRenderer = keystone_error,
                     openapi_url: str | None = None, **kwargs: Any) -> FastAPI:
    """A FastAPI app whose every error, expected or not, is JSON in the service's envelope."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=openapi_url, **kwargs)
    app.state.ctl = ctl
    # Every body is capped and checked before a route reads it, typed bodies included.
    app.add_middleware(BodyLimits, max_body=ctl.settings.max_request_body, render=render)

    def respond(err: ApiError) -> JSONResponse:
        return JSONResponse(render(err), status_code=err.status, headers=err.headers)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, err: ApiError) -> JSONResponse:
        return respond(err)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, err: RequestValidationError) -> JSONResponse:
        return respond(BadRequest(describe_validation(err.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, err: StarletteHTTPException) -> JSONResponse:
        cls = BY_STATUS.get(err.status_code, BadRequest)
        message = "The resource could not be found." if err.status_code == 404 else str(
            err.detail)
        return respond(cls(message))

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, err: IntegrityError) -> JSONResponse:
        return respond(Conflict("The request conflicts with an existing resource "
                                "(a duplicate name or id, or one still in use)."))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("%s unexpected error", request.scope.get("state", {}).get("request_id"))
        failure = ApiError("An unexpected error prevented the server from fulfilling "
                           "your request.")
        return respond(failure)

    @app.exception_handler(OperationalError)
    async def _contended(request: Request, err: OperationalError) -> JSONResponse:
        rid = request.scope.get("state", {}).get("request_id")
        if err.connection_invalidated:
            # The database connection broke under the request (a failover, a connection
            # dropped by the network): the pool has discarded it; the next try gets a
            # new one.
            log.warning("%s database connection lost: %s", rid, _first_line(err.orig))
            return respond(ServiceUnavailable(
                "The database connection was lost; the request's transaction was rolled "
                "back. Try again.", headers={"Retry-After": str(RETRY_AFTER)}))
        kind = contention(err)
        if kind is not None:
            # A deadlock or serialization failure (PostgreSQL) or a write lock waited for
            # too long (SQLite): that transaction was rolled back (an earlier one of the
            # same request may have committed); the client may try again. It usually means
            # two code paths take their locks in different orders: an ERROR, counted, and
            # a failure in the API tests (tests/api/conftest.py looks for CONTENTION_LOG).
            log.error("%s %s (%s) in %s %s: %s; statement: %s", rid, CONTENTION_LOG, kind,
                      request.method, request.url.path, _first_line(err.orig),
                      " ".join(str(err.statement or "").split())[:300])
            counter = getattr(ctl, "db_contention", None)  # metrics.py sets it
            if counter is not None:
                counter.labels(kind).inc()
            return respond(Conflict("A concurrent request changed the same resources; "
                                    "this request's transaction was rolled back. "
                                    "Try again."))
        # Any other database failure is unexpected.
        return await _unexpected(request, err)

    return app


# Logged at ERROR for every contended transaction; the API tests fail on it.
CONTENTION_LOG = "database contention"
RETRY_AFTER = 1  # seconds: a 503 for a lost database connection


def contention(err: OperationalError) -> str | None:
    """"deadlock", "serialization" or "locked" when the database refused the transaction
    for a concurrent one; None for any other failure."""
    state = getattr(err.orig, "sqlstate", None)
    if state == "40P01":
        return "deadlock"
    if state == "40001":
        return "serialization"
    if "database is locked" in str(err.orig):
        return "locked"
    return None


def _first_line(orig: BaseException | None) -> str:
    lines = str(orig).splitlines()
    return lines[0][:200] if lines else ""


def describe_validation(errors: Any) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        # Pydantic's message may quote the input; a 64 KB value must not make a 64 KB error.
        msg = _cut(str(error.get("msg")))
        parts.append(f"{_cut(where)}: {msg}" if where else msg)
        if len(parts) == MAX_REPORTED:
            break
    return "Invalid input: " + "; ".join(parts)


# How many validation errors, and how many characters of each, a 400 reports.
MAX_REPORTED = 10
MAX_PART = 200


def _cut(text: str) -> str:
    return text if len(text) <= MAX_PART else f"{text[:MAX_PART]}…"


def controller(request: Request) -> Controller:
    return request.app.state.ctl


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, read with a size cap; anything else is a 400."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("Malformed request body: a JSON object is required.")
    return body


async def read_json(request: Request, media_types: tuple[str, ...] = JSON) -> Any:
    """The request's JSON value: one of media_types (or none given), bounded size and depth.

    A body without Content-Type is read as JSON, as Nova does; any other type is a 415.
    """
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind and kind not in media_types:
        raise UnsupportedMediaType(f"Unsupported Content-Type {shown(kind)}: this request "
                                   f"takes {media_types[0]}.")
    raw = await read_bytes(request, controller(request).settings.max_request_body)
    if not raw.strip():
        raise BadRequest("The request body is empty; a JSON object is required.")
    return json_edge.loads(raw)


async def read_bytes(request: Request, limit: int, what: str = "request body") -> bytes:
    """The whole body, refused with a 413 the moment it passes limit (chunked ones too)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The {what} is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def caller(request: Request) -> Credentials:
    """Validate X-Auth-Token and return who is calling (401 on anything wrong)."""
    from .identity import token_cache
    from .identity.tokens import TokenService  # the identity service owns validation

    token = request.headers.get("x-auth-token")
    ctl = controller(request)
    if not token:
        raise Unauthorized("The request you have made requires authentication.",
                           headers=_www_authenticate(ctl))
    ctl.tokens.follow(ctl.keys.stamp())
    # A peer cloud's token, already vouched for by its issuer and mapped (peers/middleware).
    credentials = request.scope.get("state", {}).get("peer_credentials") or ctl.tokens.get(
        token)
    if credentials is None:
        generation = token_cache.generation()
        try:
            with ctl.db.session() as session:
                validated = TokenService(ctl).validate(session, token)
        except Unauthorized as err:
            err.headers.update(_www_authenticate(ctl))
            raise
        credentials = validated.credentials
        ctl.tokens.put(token, credentials, validated.payload.expires_at, generation)
    state = request.scope.setdefault("state", {})
    state["user_id"] = credentials.user_id
    state["project_id"] = credentials.project_id or "-"
    return credentials


def _www_authenticate(ctl: Controller) -> dict[str, str]:
    return {"WWW-Authenticate": f'Keystone uri="{ctl.base_url}/identity"'}


def authorize(creds: Credentials, operation: str, **target: str | None) -> None:
    enforce(creds, operation, **target)


def field(body: dict[str, Any], key: str, kind: type | tuple[type, ...],
          required: bool = False, default: Any = None, where: str = "") -> Any:
    """One typed field of a JSON object, with a precise 400 when it is wrong."""
    name = f"{where}.{key}" if where else key
    if key not in body or body[key] is None:
        if required:
            raise BadRequest(f"Invalid input: '{name}' is a required property.")
        return default
    value = body[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if bool not in kinds and isinstance(value, bool) and (int in kinds or float in kinds):
        raise BadRequest(f"Invalid input for field '{name}': {shown(value)} is not a number.")
    if not isinstance(value, kinds):
        names = " or ".join(k.__name__.replace("str", "string").replace("dict", "object")
                            .replace("list", "array").replace("int", "integer")
                            .replace("bool", "boolean") for k in kinds)
        raise BadRequest(f"Invalid input for field '{name}': {shown(value)} is not of type "
                         f"{names}.")
    return value


def wrapped(body: dict[str, Any], key: str) -> dict[str, Any]:
    """The object under the envelope key, e.g. {"project": {...}}."""
    inner = body.get(key)
    if not isinstance(inner, dict):
        raise BadRequest(f"Invalid input: '{key}' is a required object.")
    return inner
