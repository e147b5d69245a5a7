"""Waking agents' long-polls the moment the cluster revision moves in this process.

A revision bump marks its session; when that session commits, every long-poll waiting
in this process is woken to re-read the revision. Long-polls still re-read it now and
then, for bumps committed by another controller process sharing the database.
"""

from __future__ import annotations

import asyncio
import threading

from sqlalchemy import event
from sqlalchemy.orm import Session

MARK = "atwill.revision_bumped"


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


def mark(session: Session) -> None:
    """Called by a revision bump: notify once this session's transaction commits."""
    session.info[MARK] = True


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.info.pop(MARK, False):
        changed.notify()


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(MARK, None)
