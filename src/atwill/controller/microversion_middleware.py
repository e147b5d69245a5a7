"""The microversion middleware the compute and volume services share.

Each service says how it reads the requested version, how it echoes it and how its
errors look; the middleware parses once per request, keeps the version in the request
state, adds the echo to every response and answers a bad version itself.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.errors import ApiError
from ..core.microversion import Version


class MicroversionMiddleware:
    """Subclasses set `state_key` and `minimum` and define parse, echo and render."""

    state_key: str
    minimum: Version

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def parse(self, headers: dict[str, str]) -> Version:
        raise NotImplementedError

    def echo(self, version: Version) -> list[tuple[bytes, bytes]]:
        raise NotImplementedError

    def render(self, err: ApiError) -> dict[str, Any]:
        raise NotImplementedError

    def rewrite(self, scope: Scope, state: dict[str, Any]) -> None:
        """A change to the path before routing (none by default)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        self.rewrite(scope, state)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        try:
            version = self.parse(headers)
        except ApiError as err:
            await self._reply(send, err)
            return
        state[self.state_key] = version
        echoed = self.echo(version)

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + echoed
            await send(message)

        await self.app(scope, receive, send_with_version)

    async def _reply(self, send: Send, err: ApiError) -> None:
        body = json.dumps(self.render(err)).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()), *self.echo(self.minimum)]
        await send({"type": "http.response.start", "status": err.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
