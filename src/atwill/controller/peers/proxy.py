"""Relaying one request to a peer cloud and its answer back, streamed both ways."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from ...core.errors import ApiError
from . import client

# Not relayed: hop-by-hop headers, what the relay sets itself, and the scope (the peer
# serves the request itself; it never relays it further).
DROPPED = {"host", "content-length", "transfer-encoding", "connection", "keep-alive",
           "x-scope", client.CREDENTIAL_HEADER.lower(), "upgrade", "te", "trailer",
           "accept-encoding"}
DROPPED_BACK = {"content-length", "transfer-encoding", "connection", "keep-alive",
                "x-openstack-request-id", "x-compute-request-id"}


async def forward(scope: Scope, receive: Receive, send: Send, peer: Any, timeout: float,
                  own_token: bool, local_url: str) -> None:
    """Send the request to the peer (as a peer, unless the token is the peer's own)."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
               if k.decode("latin-1").lower() not in DROPPED]
    if not own_token:
        headers.append((client.CREDENTIAL_HEADER, peer.credential))
    http = _pooled(peer, timeout)
    has_body = scope["method"] not in ("GET", "HEAD", "DELETE")
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope.get("root_path", "") + scope["path"] + (f"?{query}" if query else "")
    request = http.build_request(scope["method"], path, headers=headers,
                                 content=_body(receive) if has_body else None)
    try:
        resp = await http.send(request, stream=True)
    except httpx.HTTPError as err:
        await reject(send, scope["path"], client.unreachable(peer.name, timeout, err))
        return
    try:
        back = [(k.lower(), v) for k, v in resp.headers.raw if k.decode("latin-1").lower()
                not in DROPPED_BACK]
        if "json" in resp.headers.get("content-type", "") and not resp.headers.get(
                "content-encoding"):
            # Links name the peer's own URL: they must lead the client back through here.
            body = (await resp.aread()).replace(peer.url.encode(), local_url.encode())
            back.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": resp.status_code,
                        "headers": back})
            await send({"type": "http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": resp.status_code,
                    "headers": back})
        async for chunk in resp.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        await resp.aclose()


# One keep-alive client per peer (per process): a new TCP and TLS handshake for every
# relayed request cost two more round trips over the WAN (bench scope). Replaced when the
# peer's URL, CA or credential changes.
_clients: dict[str, tuple[tuple[str, str, str], httpx.AsyncClient]] = {}


def _pooled(peer: Any, timeout: float) -> httpx.AsyncClient:
    key = (peer.url, peer.ca_pem, peer.credential)
    found = _clients.get(peer.id)
    if found is not None and found[0] == key:
        return found[1]
    http = httpx.AsyncClient(base_url=peer.url, verify=client.tls(peer.ca_pem),
                             timeout=timeout)
    _clients[peer.id] = (key, http)
    # The one it replaces is left to the collector: a request may still be using it.
    return http


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        yield message.get("body", b"")
        if not message.get("more_body"):
            return


def render(path: str, err: ApiError) -> dict[str, Any]:
    """The error in the envelope of the service the path belongs to."""
    if path.startswith(("/compute", "/volume")):
        from ..compute.common import nova_error

        return nova_error(err)
    if path.startswith("/network"):
        from ..network.common import neutron_error

        return neutron_error(err)
    if path.startswith("/orchestration"):
        from ..orchestration.common import heat_error

        return heat_error(err)
    return {"error": {"code": err.status, "message": err.message, "title": err.title}}


async def reject(send: Send, path: str, err: ApiError) -> None:
    body = json.dumps(render(path, err)).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
