"""HTTP clients for the cluster API: pinned CA, and the node certificate once joined."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from ..core import beat_order
from ..core.errors import ApiError

log = logging.getLogger("atwill.agent")
NODE_REMOVED = "node_removed"
CONNECT_TIMEOUT = 5.0
# A request extension (a heartbeat): the request goes to the next controller also when
# the one it went to cut the connection without an answer (reset, or closed: a
# controller that died; killed, its uncommitted transaction is rolled back, so it never
# applies the beat later). Unless ORDERED, never when the answer is late: a controller that
# accepted and has not answered may still apply the beat, late and out of order with a
# newer one sent elsewhere (an unordered heartbeat carries no sequence and the controller
# stamps it with its own clock: a stale copy could un-fence a powered-off node or say a
# server the user just started stopped). One controller at a time: never two copies of
# a beat in flight (c7108a4 hedged them; removed).
REPEATABLE = "atwill_repeatable"
# An ordered heartbeat (core/beat_order): () -> the next order header. Its controllers
# apply a beat only over an older one, so a late copy changes nothing: a controller that
# does not answer within BEAT_ANSWER (a hung one: SIGSTOPped, deadlocked) is given up and
# the beat goes to the next one stamped with the next sequence; the controllers are tried
# in turn, each wait twice the one before, up to the full BEAT_READ (_escalating: a slow
# controller's answer is waited for at its next turn, and the lease renewed from it). A
# cycle in which every controller refused or cut (none hung) ends the beat. Only while
# the last heartbeat reply of these controllers said "ordered" (an older one applies any
# copy late).
ORDERED = "atwill_ordered"
# Well inside the HA window: the controllers' silence at a failover is the interval
# (1 s) + BEAT_ANSWER + the next one's answer, against the 2.6 s down floor (ha_health).
BEAT_ANSWER = 0.8
# A heartbeat with several controllers: 1.5 s to connect (a TCP SYN lost is resent after
# 1 s; nothing of the request is sent before the connection and TLS are up, so the next
# controller is safe), the client's own 40 s to answer (as with one controller).
BEAT_CONNECT = 1.5
BEAT_READ = 40.0
CERTIFICATE_SUPERSEDED = "certificate_superseded"


class ClusterError(Exception):
    """The controller answered with an error: status, message and its type, if any."""

    def __init__(self, status: int, message: str, kind: str | None = None,
                 held: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        # Machine-readable (error.type): node_removed, certificate_superseded,
        # heartbeat_stale (then held: the order the controller holds, if it said).
        self.kind = kind
        self.held = held

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


def beat_options(urls: Sequence[str], restamp: Callable[[], str] | None = None
                 ) -> dict[str, Any]:
    """The request options of a heartbeat to these controllers (http.request(**them));
    restamp: the next order header, for a beat sent again to the next controller."""
    if len(urls) < 2:
        return {}  # nowhere else to go: waiting is all there is
    extensions: dict[str, Any] = {REPEATABLE: True}
    if restamp is not None and ordering(list(urls)):
        extensions[ORDERED] = restamp
    return {"timeout": httpx.Timeout(BEAT_READ, connect=BEAT_CONNECT),
            "extensions": extensions}


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
    raise ClusterError(resp.status_code, message, kind, resp.headers.get(beat_order.HEADER))


class Failover(httpx.BaseTransport):
    """Sends each request to the controller that answered last, else to the next one.

    A request that could not connect is sent to the next controller (nothing of it
    reached the first); a GET whose connection broke (a controller killed under a
    long-poll) or whose answer did not come in time (a controller that hangs, or a
    machine gone without a word: no reset ever comes) is asked again of the next (a GET
    changes nothing). A request marked REPEATABLE (a heartbeat) goes to the next when the
    connection was cut without an answer (a dying controller); when the answer is only
    late, only if it is ORDERED (its late copy changes nothing; then sent again with the
    next sequence). A heartbeat answered 503 heartbeat_row_busy (nothing applied: the
    node's row locked by another controller's transaction, maybe a hung one) goes to the
    next controller at once, for one turn of them at most. It is sent to one controller
    at a time, never hedged.
    The controller that answers is remembered for every client of the same list (the
    agent's threads each make their own).
    """

    def __init__(self, urls: list[str], context: ssl.SSLContext | bool) -> None:
        self.urls = urls
        self.transport = httpx.HTTPTransport(verify=context)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        first = preferred(self.urls)
        order = self.urls[self.urls.index(first):] + self.urls[:self.urls.index(first)]
        restamp = request.extensions.get(ORDERED)
        timeout = dict(request.extensions.get("timeout") or {})
        plan = _escalating(order, float(timeout.get("read") or BEAT_READ)) \
            if restamp is not None else [(url, None) for url in order]
        late = False  # an ordered beat: some controller of this cycle did not answer
        busy = 0  # a heartbeat: controllers that answered its row locked (503 row busy)
        for number, (url, read) in enumerate(plan):
            _aim(request, url)
            last = number == len(plan) - 1
            if restamp is not None:
                if number:
                    request.headers[beat_order.HEADER] = restamp()
                request.extensions["timeout"] = {**timeout, "read": read, "write": read}
            response = None
            try:
                response = self.transport.handle_request(request)
                if restamp is not None:
                    # Its body too: a controller stopped (or cut) between the answer's
                    # head and its body is as late as one that never answered (an ordered
                    # beat's late copy changes nothing); read by httpx after this returns,
                    # its timeout would end the beat instead of trying the next.
                    response.read()
            except BaseException as error:
                if response is not None:
                    response.close()  # its connection back to the pool, whatever failed
                if not isinstance(error, httpx.TransportError):
                    raise
                retry = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout) \
                    or request.method == "GET" and isinstance(error, BROKEN) \
                    or bool(request.extensions.get(REPEATABLE)) and isinstance(error, CUT) \
                    or restamp is not None and isinstance(error, LATE)
                late = late or isinstance(error, LATE)
                if restamp is not None and (number + 1) % len(order) == 0:
                    # A whole cycle refused or cut, none hung: nothing to wait longer for.
                    retry, late = retry and late, False
                if not retry or last:
                    raise
                log.warning("controller %s: %s; trying %s", url, error or type(error).__name__,
                            plan[number + 1][0])
                continue
            if request.extensions.get(REPEATABLE) and not last and busy + 1 < len(order) \
                    and _row_busy(response):
                # Nothing applied (the claim waited for the row lock in vain: another
                # controller's transaction, maybe a hung one, holds it): the next
                # controller may have its own way to the row soon; one turn at most.
                busy += 1
                log.warning("controller %s: the node's row is locked (503); trying %s", url,
                            plan[number + 1][0])
                response.close()
                continue
            _remember(self.urls, url)
            return response
        raise AssertionError("unreachable")  # the loop returns or raises

    def close(self) -> None:
        self.transport.close()


def _row_busy(response: httpx.Response) -> bool:
    """A 503 whose error type is heartbeat_row_busy (agents.RowBusy); its body is read."""
    if response.status_code != 503:
        return False
    try:
        response.read()
        error = response.json().get("error")
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
    return isinstance(error, dict) and error.get("type") == beat_order.BUSY


def _escalating(order: list[str], full: float) -> list[tuple[str, float]]:
    """An ordered beat's attempts: the controllers in turn, each read timeout twice the
    one before from BEAT_ANSWER, until one reaches the full read timeout (the last). A
    hung controller costs BEAT_ANSWER, then twice that at its next turn, while a slow one
    that takes longer than BEAT_ANSWER gets a longer wait at its next turn; every copy
    it applies keeps the node heard meanwhile."""
    plan, read = [], BEAT_ANSWER
    while True:
        plan.append((order[len(plan) % len(order)], min(read, full)))
        if read >= full:
            return plan
        read *= 2


def _aim(request: httpx.Request, url: str) -> None:
    """Point request at the controller url (its Host header too)."""
    target = httpx.URL(url)
    request.url = request.url.copy_with(scheme=target.scheme, host=target.host,
                                        port=target.port)
    request.headers["Host"] = target.netloc.decode("ascii")


# What may have reached a controller: a GET is asked again of the next after any.
BROKEN = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError,
          httpx.ReadTimeout, httpx.WriteTimeout)
# The connection cut without an answer (closed, reset, a broken pipe): a REPEATABLE
# request goes to the next. Not a timeout: the controller may still be working on it.
CUT = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# No answer in time: an ORDERED heartbeat goes to the next (a late copy changes nothing).
LATE = (httpx.ReadTimeout, httpx.WriteTimeout)


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


_ordering: dict[tuple[str, ...], bool] = {}


def ordering(urls: list[str]) -> bool:
    """Whether the last heartbeat reply of these controllers said "ordered" (they apply a
    beat only over an older one: core/beat_order)."""
    with _lock:
        return _ordering.get(tuple(urls), False)


def note_reply(urls: Sequence[str], reply: Any) -> None:
    """A heartbeat reply of these controllers: whether they order beats. Any reply
    without it (an older controller, as in a rolling upgrade) turns early timeouts off."""
    with _lock:
        _ordering[tuple(urls)] = isinstance(reply, dict) and reply.get("ordered") is True


__all__ = ["ORDERED", "REPEATABLE", "ApiError", "ClusterError", "Failover", "beat_options", "check",
           "client", "note_reply", "ordering", "tls_context"]
