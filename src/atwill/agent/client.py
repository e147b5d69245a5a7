"""HTTP clients for the cluster API: pinned CA, and the node certificate once joined."""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
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
# A request extension: the request is hedged (Failover._hedged). A heartbeat counts only
# if it lands inside the HA monitor's window (ha_suspect_after 1.6 s, ha_down_after
# 2.6 s by default, less a 0.4 s grace, after a 1 s interval). It is never abandoned:
# each copy waits the client's own timeouts (40 s answer, 5 s connect), since a slow
# controller still commits a beat it answers late (a beat counted failed would not renew
# the lease and would resend the inventory). If no answer came HEDGE_AFTER seconds after
# it was sent, a copy goes to the next controller too, and the first answer is kept: a
# hung controller (accepts, never answers) costs 0.6 s, not a timeout plus a new
# connection. A controller that answered its last beat slowly is given twice that time
# (at most HEDGE_MAX) before a copy goes elsewhere: a slow one, or one machine named
# twice (a load balancer and its own URL), is not sent every beat twice.
HEDGED = "atwill_hedged"
HEDGE_AFTER = 0.6
HEDGE_MAX = 5.0
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
    return {"extensions": {REPEATABLE: True, HEDGED: True}}


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
    so is a request marked REPEATABLE. A request marked HEDGED (a heartbeat) is also
    sent to the next controller when the first has not answered in HEDGE_AFTER seconds.
    The controller that answers is remembered for every client of the same list (the
    agent's threads each make their own).
    """

    def __init__(self, urls: list[str], context: ssl.SSLContext | bool) -> None:
        self.urls = urls
        self.transport = httpx.HTTPTransport(verify=context)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        first = preferred(self.urls)
        order = self.urls[self.urls.index(first):] + self.urls[:self.urls.index(first)]
        if request.extensions.get(HEDGED) and len(order) > 1:
            return self._hedged(request, order)
        for number, url in enumerate(order):
            _aim(request, url)
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

    def _hedged(self, request: httpx.Request, order: list[str]) -> httpx.Response:
        """Send to order[0]; a copy to the next controller when no answer came in time or
        an attempt failed; the first answer wins, later ones are closed unread. Every copy
        waits its full timeouts: a late answer of the only live controller is kept."""
        body = request.read()
        answers: queue.Queue[tuple[str, httpx.Response | None, Exception | None]] = \
            queue.Queue()
        lock = threading.Lock()
        decided = False

        def attempt(url: str) -> None:
            copy = httpx.Request(request.method, request.url, headers=request.headers,
                                 content=body, extensions=dict(request.extensions))
            _aim(copy, url)
            sent = time.monotonic()
            try:
                response: httpx.Response | None = self.transport.handle_request(copy)
                error: Exception | None = None
            except Exception as failure:  # noqa: BLE001 - reported to the waiting thread
                response, error = None, failure
            with lock:
                if decided:  # another copy answered first (or all failed): not wanted
                    if response is not None:
                        response.close()
                    return
                if response is not None:
                    _took(url, time.monotonic() - sent)
                answers.put((url, response, error))

        def start(url: str) -> float:
            threading.Thread(target=attempt, args=(url,), daemon=True,
                             name="beat-copy").start()
            return time.monotonic() + hedge_delay(url)

        hedge_at, started, pending = start(order[0]), 1, 1
        last: Exception | None = None
        while True:
            wait = max(0.0, hedge_at - time.monotonic()) if started < len(order) else None
            try:
                url, response, error = answers.get(timeout=wait)
            except queue.Empty:
                log.warning("controller %s: no answer in %.1fs; also trying %s",
                            order[started - 1], hedge_delay(order[started - 1]),
                            order[started])
                hedge_at, started, pending = start(order[started]), started + 1, pending + 1
                continue
            pending -= 1
            if response is not None:
                with lock:
                    decided = True
                    while not answers.empty():  # a copy that answered meanwhile: closed
                        late = answers.get_nowait()[1]
                        if late is not None:
                            late.close()
                _remember(self.urls, url)
                return response
            last = error
            if started < len(order):
                log.warning("controller %s: %s; trying %s", url,
                            error or type(error).__name__, order[started])
                hedge_at, started, pending = start(order[started]), started + 1, pending + 1
            elif pending == 0:
                with lock:
                    decided = True
                assert last is not None
                raise last

    def close(self) -> None:
        self.transport.close()


def _aim(request: httpx.Request, url: str) -> None:
    """Point request at the controller url (its Host header too)."""
    target = httpx.URL(url)
    request.url = request.url.copy_with(scheme=target.scheme, host=target.host,
                                        port=target.port)
    request.headers["Host"] = target.netloc.decode("ascii")


_took_lock = threading.Lock()
_answer_time: dict[str, float] = {}


def _took(url: str, seconds: float) -> None:
    with _took_lock:
        _answer_time[url] = seconds


def hedge_delay(url: str) -> float:
    """Seconds a hedged request to url waits for its answer before a copy goes to the
    next controller: HEDGE_AFTER, or twice url's last answer time (at most HEDGE_MAX)."""
    with _took_lock:
        took = _answer_time.get(url, 0.0)
    return min(HEDGE_MAX, max(HEDGE_AFTER, 2 * took))


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


__all__ = ["HEDGED", "REPEATABLE", "ApiError", "ClusterError", "Failover", "beat_options", "check",
           "client", "hedge_delay", "tls_context"]
