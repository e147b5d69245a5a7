"""Waking agents' long-polls the moment the cluster revision moves, in any worker.

A revision bump marks its session; when that session commits, every long-poll waiting
in this process is woken to re-read the revision, and the bump is told to the other
worker processes of this controller through a file in the state directory
(worker_stamp), which each worker's follow() loop stats every FOLLOW_EVERY seconds:
a bump in one worker wakes the long-polls held in another within FOLLOW_EVERY plus
one re-read. Long-polls still re-read the revision now and then, for bumps committed
by a controller on another machine sharing the database.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

from .worker_stamp import Stamp, WorkerStamp

MARK = "atwill.revision_bumped"
FOLLOW_EVERY = 0.05  # seconds: the bound, beside one re-read, on a wake across workers


class RevisionSignal:
    """Waiters on asyncio loops, woken from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def subscribe(self) -> asyncio.Event:
        """An event set at the next notify; take it *before* reading the revision."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(waiter)
        return waiter[1]

    def unsubscribe(self, wakeup: asyncio.Event) -> None:
        with self._lock:
            self._waiters = {w for w in self._waiters if w[1] is not wakeup}

    def notify(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, set()
        for loop, wakeup in waiters:
            try:
                loop.call_soon_threadsafe(wakeup.set)
            except RuntimeError:  # that loop has closed
                pass

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
_shared_lock = threading.Lock()


def share(path: Path) -> None:
    """Tell other workers of each bump here through `path`, and follow theirs."""
    with _shared_lock:
        _shared.setdefault(path, [WorkerStamp(path).read()])


def unshare(path: Path) -> None:
    with _shared_lock:
        _shared.pop(path, None)


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
    try:
        while True:
            await asyncio.sleep(FOLLOW_EVERY)
            if _told(path, stamp.read()):
                changed.notify()
    finally:
        unshare(path)


def mark(session: Session) -> None:
    """Called by a revision bump: notify once this session's transaction commits."""
    session.info[MARK] = True


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.info.pop(MARK, False):
        with _shared_lock:
            paths = list(_shared)
        for path in paths:
            # What this write leaves is no news here: the waiters are woken just below,
            # after it, so they also see what others committed before it.
            _told(path, WorkerStamp(path).touch())
        changed.notify()


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(MARK, None)
