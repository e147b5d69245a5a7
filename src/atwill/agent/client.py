"""HTTP clients for the cluster API: pinned CA, and the node certificate once joined."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from ..core.errors import ApiError

NODE_REMOVED = "node_removed"
CERTIFICATE_SUPERSEDED = "certificate_superseded"


class ClusterError(Exception):
    """The controller answered with an error: status, message and its type, if any."""

    def __init__(self, status: int, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        # Machine-readable (error.type): node_removed, certificate_superseded.
        self.kind = kind

    @property
    def removed(self) -> bool:
        return self.status == 403 and self.kind == NODE_REMOVED


def tls_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert and key:
        context.load_cert_chain(str(cert), str(key))
    return context


def client(url: str, context: ssl.SSLContext | bool,
           timeout: float | httpx.Timeout = 30.0) -> httpx.Client:
    return httpx.Client(base_url=url, verify=context, timeout=timeout)


def check(resp: httpx.Response) -> httpx.Response:
    """Raise ClusterError with the controller's own message for any error status."""
    if resp.status_code < 400:
        return resp
    kind = None
    try:
        body = resp.json()
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        message = error.get("message") or str(body)
        kind = error.get("type") if isinstance(error.get("type"), str) else None
    except ValueError:
        message = resp.text or resp.reason_phrase
    raise ClusterError(resp.status_code, message, kind)


__all__ = ["ApiError", "ClusterError", "check", "client", "tls_context"]
