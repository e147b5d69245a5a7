"""Mutual TLS: hand the client certificate of each connection to the ASGI app.

uvicorn verifies the client certificate against the cluster CA (CERT_OPTIONAL,
so OpenStack clients without one still connect) but does not put it in the ASGI
scope; this protocol subclass does, as the ASGI TLS extension's
``client_cert_chain`` (DER here), for every request on the connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol


class PeerCertProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            inner = self.app

            async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
                extensions = dict(scope.get("extensions") or {})
                extensions["tls"] = {"client_cert_chain": [der]}
                scope["extensions"] = extensions
                await inner(scope, receive, send)

            self.app = app

    def shutdown(self) -> None:
        """Drop an idle keep-alive connection at once when the server stops.

        Closing it cleanly over TLS waits for the client's close_notify (up to asyncio's
        30 s ssl_shutdown_timeout), which an idle client never sends: a controller told to
        stop hung until it was killed whenever an SDK session was open.
        """
        if self.cycle is None or self.cycle.response_complete:
            self.transport.abort()
        else:
            super().shutdown()  # a request in flight finishes, then the connection closes


def client_cert(scope: dict[str, Any]) -> bytes | None:
    chain = (scope.get("extensions") or {}).get("tls", {}).get("client_cert_chain") or []
    return chain[0] if chain else None
