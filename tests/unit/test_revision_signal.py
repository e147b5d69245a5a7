"""Long-polls wake when a revision bump commits, not when it rolls back."""

import asyncio
import threading
import time

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from atwill.controller.revision_signal import RevisionSignal, changed, mark


def test_a_notify_from_another_thread_wakes_the_waiter() -> None:
    signal = RevisionSignal()

    async def scenario() -> float:
        wakeup = signal.subscribe()
        threading.Timer(0.05, signal.notify).start()
        started = time.monotonic()
        await signal.wait(wakeup, 5.0)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 1.0


def test_without_notify_the_wait_ends_at_its_timeout() -> None:
    signal = RevisionSignal()

    async def scenario() -> tuple[bool, int]:
        wakeup = signal.subscribe()
        await signal.wait(wakeup, 0.05)
        return wakeup.is_set(), len(signal._waiters)

    assert asyncio.run(scenario()) == (False, 0)


def test_commit_notifies_and_rollback_does_not() -> None:
    engine = create_engine("sqlite://")

    async def woken_by(end: str) -> bool:
        wakeup = changed.subscribe()

        def bump_then_end() -> None:
            with Session(engine) as session:
                mark(session)
                getattr(session, end)()

        await asyncio.to_thread(bump_then_end)
        await changed.wait(wakeup, 0.2)
        return wakeup.is_set()

    assert asyncio.run(woken_by("commit")) is True
    assert asyncio.run(woken_by("rollback")) is False
    engine.dispose()
