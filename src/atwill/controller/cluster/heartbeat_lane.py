"""A lean heartbeat answered in front of the middleware stack (liveness.py).

A node's beat that only says it lives is most of a fleet's traffic: 2,000 nodes send
2,000 a second. Through the whole stack (request context, scope relay, metrics, body
limits, routing, FastAPI's dependency solving and response model) its framework work
alone cost more than the goal of a quarter millisecond per beat. This lane takes
`POST /cluster/v1/nodes/{id}/heartbeat` with a client certificate and no X-Scope off
the stack: it reads the body under the heartbeat's own limit, parses and checks it as
the route does (agents.checked), and answers it only when it is lean. Anything else (a
full beat, a bad or oversized body, a wrong certificate) goes on to the app with the
body replayed, which answers exactly as before. A lean beat still gets its request id
header; it is not logged per request nor counted in the request metrics. While the flush
is behind, a lean beat is held: answered once its flush wrote it, else (not written, or
not within HOLD_WAIT) passed on to the route, its hold undone first (liveness.py, "Held
beats").
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ...api.cluster import Heartbeat
from ...core import beat_order, json_edge
from ...core.nodereports import HEARTBEAT_BYTES
from ..context import Controller
from ..ha.lease import host_report
from ..peercert import client_cert
from . import liveness
from .agents import HeartbeatStale, checked, lean

log = logging.getLogger("atwill.cluster")

ASGI = Callable[[dict[str, Any], Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]],
                Awaitable[None]]
PATH = re.compile(r"/cluster/v1/nodes/([0-9A-Za-z-]{1,64})/heartbeat")


class HeartbeatLane:
    def __init__(self, app: ASGI, ctl: Controller) -> None:
        self.app, self.ctl = app, ctl

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" \
                or (found := PATH.fullmatch(scope["path"])) is None \
                or (cert := client_cert(scope)) is None or not liveness.enabled() \
                or any(name == b"x-scope" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        read: list[dict] = []
        size = 0
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > HEARTBEAT_BYTES or not message.get("more_body"):
                break
        reply = None
        if size <= HEARTBEAT_BYTES and read[-1]["type"] == "http.request" \
                and not read[-1].get("more_body"):
            reply = self._lean(scope, found.group(1), cert,
                               b"".join(m.get("body", b"") for m in read))
        if isinstance(reply, liveness.Held):
            reply = await _written(reply)
        if reply is None:
            await self.app(scope, _replay(read, receive), send)
            return
        payload = _encoded(reply)
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"x-openstack-request-id", f"req-{uuid.uuid4()}".encode())]})
        await send({"type": "http.response.body", "body": payload})

    def _lean(self, scope: dict[str, Any], node_id: str, cert: bytes, raw: bytes
              ) -> dict | liveness.Held | None:
        try:
            data = _decoded(raw)
            if not isinstance(data, dict):
                return None
            body = checked(Heartbeat.model_validate(data))
            order = beat_order.parse(_header(scope, ORDER))
        except Exception:  # the route answers it (its 400 or 413)
            return None
        client = (scope.get("client") or ("",))[0] or ""
        try:
            return lean(self.ctl, node_id, cert, client, body,
                        host_report(body.host, body.peers), order, hold=True)
        except HeartbeatStale:
            return None  # the route answers it (409, error type heartbeat_stale)
        except Exception:  # never a bare 500 from here: the full route answers it
            log.exception("lean heartbeat of node %s failed; taking the full path", node_id)
            return None


def _decoded(raw: bytes) -> Any:
    """json_edge.loads(raw), without its scan where that scan cannot refuse the body: no
    backslash (so no lone surrogate escape), no NUL (so UTF-8, not 16 or 32), no more
    brackets than its depth limit; valid UTF-8 without a BOM (else json_edge's answer).
    The scan, a Python loop over the body's brackets and quotes, and a decoder made per
    call were a sixth of the lane's own CPU per beat."""
    if b"\\" in raw or b"\x00" in raw \
            or raw.count(b"{") + raw.count(b"[") > json_edge.MAX_DEPTH:
        return json_edge.loads(raw)
    try:
        return _DECODER.decode(raw.decode("utf-8"))
    except ValueError:  # malformed, a BOM, not UTF-8, NaN or Infinity: json_edge says
        return json_edge.loads(raw)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=json_edge.finite)
ORDER = beat_order.HEADER.lower().encode("latin-1")
HOLD_WAIT = liveness.HOLD_WAIT  # seconds a held beat waits for its flush (0.4 s, at most
# half the agent's BEAT_ANSWER); then the full route takes it


async def _written(held: liveness.Held) -> dict | None:
    """A held beat's reply once a flush wrote it; None (the full route) if it was not
    written, or not within HOLD_WAIT. Before the route, the hold is undone
    (Liveness.release): else the route found the beat stale against its own order. The
    wait never cancels the future: a flush that took the beat answers it. A beat the
    running flush took and has not answered yet (in flight) waits for that answer, while
    the flush has not hung (Liveness.hung: it began at most HOLD_WAIT ago): else a
    beat the flush wrote just after the wait ran out was answered 409 by the route."""
    waited = asyncio.wrap_future(held.future)
    await asyncio.wait({waited}, timeout=HOLD_WAIT)
    until = time.monotonic() + 2 * liveness.HOLD_WAIT  # a belt: hung() bounds it first
    while True:
        future = held.future
        if future.done() and not future.cancelled() and future.result() is True:
            return held.reply
        owner = held.owner
        if owner is None:
            return None
        now = time.monotonic()
        if owner.release(held.node_id, held, force=now > until or owner.hung(now)):
            return None
        await asyncio.wait({waited}, timeout=IN_FLIGHT_POLL)  # in flight: its answer


IN_FLIGHT_POLL = 0.01  # seconds between looks at an in-flight beat's flush (answered, hung)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    """A request header's value (the first), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


_REPLIES: dict[tuple[Any, ...], bytes] = {}


def _encoded(reply: dict) -> bytes:
    """The lean reply's bytes: one of a few (revision, state, ordered), encoded once."""
    key = (reply.get("revision"), reply.get("state"), reply.get("ordered"))
    if len(reply) != 3 or not isinstance(key[0], int) or not isinstance(key[1], str) \
            or not isinstance(key[2], bool):
        return json.dumps(reply).encode()
    found = _REPLIES.get(key)
    if found is None:
        if len(_REPLIES) >= 4096:  # revisions only grow: the old ones are not asked again
            _REPLIES.clear()
        found = _REPLIES[key] = json.dumps(reply).encode()
    return found


def _replay(read: list[dict], receive: Any) -> Callable[[], Awaitable[dict]]:
    """receive, giving the messages the lane read first."""
    pending = list(read)

    async def again() -> dict:
        if pending:
            return pending.pop(0)
        return await receive()

    return again
