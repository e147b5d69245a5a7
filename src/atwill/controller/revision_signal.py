"""Waking agents' long-polls the moment their node's revision moves, in any worker.

A revision bump marks its session with the nodes it concerns (None: every node); when
that session commits, the long-polls of those nodes waiting in this process are woken
(and every waiter for any change, such as the dashboard's), and the bump is told to the
other worker processes of this controller through a file in the state directory
(worker_stamp), which each worker's follow() loop stats every FOLLOW_EVERY seconds. The
file only says "changed": a worker that follows it with a resolver (the long-poll
installs one, watch()) asks the database once which nodes moved past the clock it last
saw and wakes only theirs, and asks again every RECHECK seconds anyway, for bumps
committed by a controller on another machine sharing the database. A bump in one worker
thus wakes the long-polls held in another within FOLLOW_EVERY plus one query. Only the
outermost transaction's commit wakes them, never a savepoint's (savepoint_info).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

from . import savepoint_info
from .worker_stamp import Stamp, WorkerStamp

log = logging.getLogger("atwill.revision")
MARK = "atwill.revision_bumped"
FOLLOW_EVERY = 0.05  # seconds: the bound, beside one re-read, on a wake across workers
RECHECK = 1.0  # seconds between a resolver's queries when no stamp moved
ANY = ""  # the key of waiters for any change
# Which nodes moved since the resolver's last call (None: every node), run in a thread.
Resolver = Callable[[], set[str] | None]


class RevisionSignal:
    """Waiters on asyncio loops, each for one node's changes or for any, woken from any
    thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._keys: dict[asyncio.Event, str] = {}
        # Called with each notify's nodes (None: every node), in the notifying thread:
        # cluster/liveness forgets what it knew of those nodes' revisions.
        self.listeners: list[Callable[[set[str] | None], None]] = []

    def subscribe(self, node: str | None = None) -> asyncio.Event:
        """An event set at the next change for node (any change: None); take it *before*
        reading the revision."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        key = node or ANY
        with self._lock:
            self._waiters.setdefault(key, set()).add(waiter)
            self._keys[waiter[1]] = key
        return waiter[1]

    def unsubscribe(self, wakeup: asyncio.Event) -> None:
        with self._lock:
            key = self._keys.pop(wakeup, None)
            if key is None:
                return
            left = {w for w in self._waiters.get(key, ()) if w[1] is not wakeup}
            if left:
                self._waiters[key] = left
            else:
                self._waiters.pop(key, None)

    def notify(self, nodes: Iterable[str] | None = None) -> None:
        """Wake the waiters of these nodes (every node: None) and those of any change."""
        nodes = None if nodes is None else set(nodes)
        for listener in list(self.listeners):
            listener(nodes)
        with self._lock:
            if nodes is None:
                keys = list(self._waiters)
            else:
                keys = [ANY, *(n for n in nodes if n in self._waiters)]
            waiters = set()
            for key in keys:
                for waiter in self._waiters.pop(key, ()):
                    waiters.add(waiter)
                    self._keys.pop(waiter[1], None)
        for loop, wakeup in waiters:
            try:
                loop.call_soon_threadsafe(wakeup.set)
            except RuntimeError:  # that loop has closed
                pass

    def waiting(self) -> int:
        with self._lock:
            return len(self._keys)

    async def wait(self, wakeup: asyncio.Event, timeout: float) -> None:
        """Until notified or timeout; the waiter is gone afterwards either way."""
        try:
            await asyncio.wait_for(wakeup.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self.unsubscribe(wakeup)


changed = RevisionSignal()
# The stamp files of the controllers in this process (one, but for in-process tests),
# each with what this process last wrote or saw in it.
_shared: dict[Path, list[Stamp]] = {}
_resolvers: dict[Path, Resolver] = {}
_shared_lock = threading.Lock()


def share(path: Path) -> None:
    """Tell other workers of each bump here through `path`, and follow theirs."""
    with _shared_lock:
        _shared.setdefault(path, [WorkerStamp(path).read()])


def unshare(path: Path) -> None:
    with _shared_lock:
        _shared.pop(path, None)
        _resolvers.pop(path, None)


def watched(path: Path) -> bool:
    with _shared_lock:
        return path in _resolvers


def watch(path: Path, make: Callable[[], Resolver]) -> None:
    """Resolve the other workers' bumps told through path into the nodes they concern
    (a resolver from make(), once per path; only where path is shared)."""
    with _shared_lock:
        if path not in _shared or path in _resolvers:
            return
    resolver = make()  # outside the lock: it reads the database
    with _shared_lock:
        if path in _shared:
            _resolvers.setdefault(path, resolver)


def _told(path: Path, stamp: Stamp) -> bool:
    """Record stamp as seen; whether it is news."""
    with _shared_lock:
        seen = _shared.get(path)
        if seen is None or seen[0] == stamp:
            return False
        seen[0] = stamp
        return True


async def follow(path: Path) -> None:
    """Wake this worker's waiters when another worker bumps the revision (runs forever)."""
    stamp = WorkerStamp(path)
    checked = time.monotonic()
    try:
        while True:
            await asyncio.sleep(FOLLOW_EVERY)
            news = _told(path, stamp.read())
            with _shared_lock:
                resolver = _resolvers.get(path)
            if resolver is None:
                if news:
                    changed.notify()
                continue
            if not news and time.monotonic() - checked < RECHECK:
                continue
            checked = time.monotonic()
            try:
                nodes = await asyncio.to_thread(resolver)
            except Exception:  # noqa: BLE001 - the database away: wake all, they re-read
                log.exception("could not read which nodes' revisions moved")
                nodes = None
            if news or nodes is None or nodes:
                changed.notify(nodes)
    finally:
        unshare(path)


def mark(session: Session, nodes: Iterable[str] | None = None) -> None:
    """Called by a revision bump: once this session's transaction commits, wake the
    waiters of these nodes (None: every node)."""
    if nodes is None or session.info.get(MARK, set()) is None:
        session.info[MARK] = None
    else:
        session.info[MARK] = session.info.get(MARK, set()) | set(nodes)


savepoint_info.keep(MARK)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if MARK not in session.info or not savepoint_info.outermost(session):
        return
    nodes = session.info.pop(MARK)
    with _shared_lock:
        paths = list(_shared)
    for path in paths:
        # What this write leaves is no news here: the waiters are woken just below,
        # after it, so they also see what others committed before it.
        _told(path, WorkerStamp(path).touch())
    changed.notify(nodes)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    if savepoint_info.outermost(session):
        session.info.pop(MARK, None)
