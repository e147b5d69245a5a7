"""Request bodies checked at the transport, before any route parses them.

Every service app wraps its routes in BodyLimits, so a route with a typed body
(which FastAPI reads whole and parses itself) gets the same limits as one that
calls json_body: at most max_body bytes however the body is sent (chunked
bodies have no Content-Length to check up front), a JSON media type, bounded
nesting and no lone surrogates. Routes that stream large bodies to disk are
left to their own size limit.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core import json_edge
from ..core.errors import ApiError, PayloadTooLarge, UnsupportedMediaType
from ..core.text import shown
from .middleware import STREAMED, STREAMED_SUFFIXES

# Media types a JSON body may be sent with; a route may accept fewer (see json_body).
# No Content-Type at all is read as JSON, as Nova does.
JSON_TYPES = ("application/json", "application/openstack-images-v2.1-json-patch",
              "application/openstack-images-v2.0-json-patch")
CHECKED_METHODS = ("POST", "PUT", "PATCH")


def media_type(headers: list[tuple[bytes, bytes]]) -> str:
    """The Content-Type's media type, lower case, without parameters ('' when absent)."""
    for name, value in headers:
        if name == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return ""


def streamed(path: str) -> bool:
    """Whether path is an upload that the handler streams to disk and limits itself."""
    return path.endswith(STREAMED_SUFFIXES) or STREAMED.search(path) is not None


class BodyLimits:
    """Reads a body whole up to max_body, checks it, and hands the route the same bytes."""

    def __init__(self, app: ASGIApp, max_body: int, render: Callable[[ApiError], dict],
                 max_depth: int = json_edge.MAX_DEPTH) -> None:
        self.app = app
        self.max_body = max_body
        self.max_depth = max_depth
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or streamed(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(receive)
            if body.strip() and scope["method"] in CHECKED_METHODS:
                self._check(scope, body)
        except _Gone:
            return  # the client went away mid-body: there is no one to answer
        except ApiError as err:
            # Past the limit the rest of the body is unread: end the connection after
            # answering, so the client cannot keep streaming into it.
            close = {"connection": "close"} if isinstance(err, PayloadTooLarge) else {}
            response = JSONResponse(self.render(err), status_code=err.status,
                                    headers={**err.headers, **close})
            await response(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes:
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                raise _Gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise PayloadTooLarge(
                    f"Request body is larger than the limit of {self.max_body} bytes.")
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    def _check(self, scope: Scope, body: bytes) -> None:
        kind = media_type(scope["headers"])
        if kind and kind not in JSON_TYPES:
            raise UnsupportedMediaType(
                f"Unsupported Content-Type {shown(kind)}: this API takes "
                "application/json.")
        json_edge.check(body, self.max_depth)


class _Gone(Exception):
    """The client disconnected before its body was complete."""


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body once, then whatever the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
