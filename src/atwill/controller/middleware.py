"""ASGI middleware: request ids, one log line per request, request body limits."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("atwill.access")

# Paths whose bodies are streamed to disk and limited by the handler itself: image data,
# and a node's snapshot upload (both limited by the image size limit).
STREAMED_SUFFIXES = ("/file", "/stage")
STREAMED = re.compile(r"/cluster/v1/nodes/[^/]+/snapshots/[^/]+")
# What every agent calls all the time (a heartbeat a second, the long-poll, console
# tails): logged at DEBUG when it succeeds, so the log shows changes, not the beat.
ROUTINE = re.compile(r"/cluster/v1/nodes/[^/]+/(heartbeat|desired|instances/[^/]+/console)")


class RequestContext:
    """Gives every request an id, echoes it, logs one line, caps JSON body size."""

    def __init__(self, app: ASGIApp, max_body: int, mounts: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_body = max_body
        self.mounts = mounts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.mounts:
            # Clients ask for the bare service prefix; serve it rather than redirect.
            scope = dict(scope, path=scope["path"] + "/", raw_path=None)
        request_id = f"req-{uuid.uuid4()}"
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-openstack-request-id", request_id.encode()))
                if scope["path"].startswith("/compute"):
                    headers.append((b"x-compute-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            if self._too_large(scope):
                await _reject(send_with_id, 413, "Request body is larger than the limit of "
                              f"{self.max_body} bytes.", scope["path"])
                return
            await self.app(scope, receive, send_with_id)
        finally:
            state = scope["state"]
            routine = 0 < status < 400 and ROUTINE.fullmatch(scope["path"])
            log.log(
                logging.DEBUG if routine else logging.INFO,
                "%s %s %s %s %.1fms user=%s project=%s", request_id, scope["method"],
                scope["path"], status, (time.perf_counter() - started) * 1000,
                state.get("user_id", "-"), state.get("project_id", "-"))

    def _too_large(self, scope: Scope) -> bool:
        if scope["path"].endswith(STREAMED_SUFFIXES) or STREAMED.fullmatch(scope["path"]):
            return False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    return int(value) > self.max_body
                except ValueError:
                    return False
        return False


async def _reject(send: Send, status: int, message: str, path: str) -> None:
    error = {"code": status, "message": message}
    # Nova's envelope names the error; the other services use Keystone's.
    envelope = {"overLimit": error} if path.startswith("/compute") else {"error": error}
    body = json.dumps(envelope).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
