"""HTTP clients for the cluster API: pinned CA, and the node certificate once joined."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from ..core.errors import ApiError

log = logging.getLogger("atwill.agent")
NODE_REMOVED = "node_removed"
CONNECT_TIMEOUT = 5.0
# A request extension: the request may be sent again to the next controller whatever
# broke (a heartbeat: a liveness report, the same if it landed twice), as a GET is.
REPEATABLE = "atwill_repeatable"
# A heartbeat counts only if it lands inside the HA monitor's window (ha_suspect_after,
# 1.6 s by default; down at 2.6 s). With another controller to go to, one that has not
# connected (a TCP SYN lost is resent after 1 s) or answered by then is left for the
# next instead of being waited for 5 s (connect) or 40 s (a machine gone silent).
BEAT_TIMEOUT = httpx.Timeout(2.0, connect=1.5)
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


def client(url: str | Sequence[str], context: ssl.SSLContext | bool,
           timeout: float | httpx.Timeout = 30.0) -> httpx.Client:
    """A client of one controller, or of the first that answers of several (Failover)."""
    urls = [url] if isinstance(url, str) else list(url)
    if len(urls) == 1:
        return httpx.Client(base_url=urls[0], verify=context, timeout=timeout)
    if not isinstance(timeout, httpx.Timeout):
        # A dead machine does not refuse a connection: give up on it soon.
        timeout = httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout))
    return httpx.Client(base_url=preferred(urls), timeout=timeout, verify=context,
                        transport=Failover(urls, context))


def beat_options(urls: Sequence[str]) -> dict[str, Any]:
    """The request options of a heartbeat to these controllers (http.request(**them))."""
    if len(urls) < 2:
        return {}  # nowhere else to go: waiting is all there is
    return {"timeout": BEAT_TIMEOUT, "extensions": {REPEATABLE: True}}


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


class Failover(httpx.BaseTransport):
    """Sends each request to the controller that answered last, else to the next one.

    A request that could not connect is sent to the next controller (nothing of it
    reached the first); a GET whose connection broke (a controller killed under a
    long-poll) or whose answer did not come in time (a controller that hangs, or a
    machine gone without a word: no reset ever comes) is asked again of the next, and
    so is a request marked REPEATABLE. The controller that answers is remembered for
    every client of the same list (the agent's threads each make their own).
    """

    def __init__(self, urls: list[str], context: ssl.SSLContext | bool) -> None:
        self.urls = urls
        self.transport = httpx.HTTPTransport(verify=context)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        first = preferred(self.urls)
        order = self.urls[self.urls.index(first):] + self.urls[:self.urls.index(first)]
        for number, url in enumerate(order):
            target = httpx.URL(url)
            request.url = request.url.copy_with(scheme=target.scheme, host=target.host,
                                                port=target.port)
            request.headers["Host"] = target.netloc.decode("ascii")
            try:
                response = self.transport.handle_request(request)
            except httpx.TransportError as error:
                retry = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout) \
                    or repeatable(request) and isinstance(error, BROKEN)
                if not retry or number == len(order) - 1:
                    raise
                log.warning("controller %s: %s; trying %s", url, error or type(error).__name__,
                            order[number + 1])
                continue
            _remember(self.urls, url)
            return response
        raise AssertionError("unreachable")  # the loop returns or raises

    def close(self) -> None:
        self.transport.close()


# What may have reached a controller and is sent again only if repeatable.
BROKEN = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError,
          httpx.ReadTimeout, httpx.WriteTimeout)


def repeatable(request: httpx.Request) -> bool:
    return request.method == "GET" or bool(request.extensions.get(REPEATABLE))


_lock = threading.Lock()
_answered: dict[tuple[str, ...], str] = {}


def preferred(urls: list[str]) -> str:
    """The controller of urls that answered last (the first until one did)."""
    with _lock:
        url = _answered.get(tuple(urls))
    return url if url in urls else urls[0]


def _remember(urls: list[str], url: str) -> None:
    with _lock:
        _answered[tuple(urls)] = url


__all__ = ["REPEATABLE", "ApiError", "ClusterError", "Failover", "beat_options", "check",
           "client", "tls_context"]
