"""The dashboard's way to the APIs: in-process HTTP with the session's token.

Pages never read or write the database for cloud resources: they call the same
handlers as the CLI, so the API's policy is the only one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.types import ASGIApp

COMPUTE = {"OpenStack-API-Version": "compute 2.79"}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_message(resp: httpx.Response) -> str:
    """The message of any OpenStack error envelope, else the status text."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500] or resp.reason_phrase
    if isinstance(body, dict):
        for value in [body, *body.values()]:
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"]
            if isinstance(value, dict) and isinstance(value.get("detail"), str):
                return value["detail"]
    return resp.reason_phrase


class Api:
    """One caller's client; `source` is the browser's address (the APIs rate-limit by it)."""

    def __init__(self, app: ASGIApp, token: str | None, source: tuple[str, int]) -> None:
        self.app, self.token, self.source = app, token, source

    def with_token(self, token: str) -> Api:
        return Api(self.app, token, self.source)

    def _client(self) -> httpx.AsyncClient:
        headers = {"X-Auth-Token": self.token} if self.token else {}
        transport = httpx.ASGITransport(app=self.app, client=self.source)
        return httpx.AsyncClient(transport=transport, base_url="http://dashboard.internal",
                                 headers=headers, timeout=60)

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with self._client() as client:
            resp = await client.request(method, path, **kwargs)
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, error_message(resp))
        return resp

    async def get(self, path: str, **kwargs: Any) -> Any:
        return (await self.call("GET", path, **kwargs)).json()

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        resp = await self.call("POST", path, json=body, **kwargs)
        return resp.json() if resp.content else None

    async def put(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        resp = await self.call("PUT", path, json=body, **kwargs)
        return resp.json() if resp.content else None

    async def delete(self, path: str, **kwargs: Any) -> None:
        await self.call("DELETE", path, **kwargs)

    async def upload(self, path: str, stream: AsyncIterator[bytes]) -> None:
        await self.call("PUT", path, content=stream,
                        headers={"Content-Type": "application/octet-stream"})
