"""The lean heartbeat path's staleness bound (cluster/liveness.py): a beat buffered just
after a flush took its buffer waits for that flush, FLUSH, and the next flush; so no beat
is answered lean while a flush runs over SLOW, nor right after one that did, and the
flush loop writes what a slow flush left at once. A fake clock, no database."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from atwill.controller.cluster import liveness
from atwill.controller.cluster.liveness import Known, Liveness, digest

BODY = SimpleNamespace(inventory=None, instances={}, volumes=None, overlay={}, running_vms=0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(liveness, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def _worker(clock: Clock) -> Liveness:
    live = Liveness(None)
    live._known["n0"] = Known(b"c", "s0", "", digest({}, None), 0, 0, True, clock.now)
    live._flushed = clock.now
    live._thread = threading.current_thread()  # a flush loop runs (not started here)
    return live


def _lean(live: Liveness) -> bool:
    return live.lean("n0", b"c", "", BODY, {}) is not None


def test_the_bound_holds_with_flushes_of_slow_each() -> None:
    # buffered just after a swap: the rest of that flush, FLUSH, the next flush
    assert liveness.SLOW + liveness.FLUSH + liveness.SLOW <= liveness.STALENESS + 1e-9


def test_no_lean_answer_while_a_flush_runs_over_slow_nor_after_it(clock: Clock) -> None:
    live = _worker(clock)
    inside, release = threading.Event(), threading.Event()

    def slow_write(beats: dict[str, Any], serials: dict[str, str]) -> int:
        inside.set()
        assert release.wait(10)
        return len(beats)

    live._write = slow_write  # type: ignore[method-assign]
    assert _lean(live)  # buffered: the flush below takes it
    flusher = threading.Thread(target=live.flush)
    flusher.start()
    try:
        assert inside.wait(10)
        clock.now += 0.05
        assert _lean(live)  # the flush is young: this beat still meets the bound
        clock.now += liveness.SLOW  # the flush has run 0.2 s: a beat now could wait
        assert not _lean(live)  # 0.2 + FLUSH + SLOW > STALENESS
    finally:
        release.set()
        flusher.join(10)
    assert live._took > liveness.SLOW
    clock.now += 0.01
    assert not _lean(live)  # right after a slow flush: not until one keeps up again
    live._write = lambda beats, serials: len(beats)  # type: ignore[method-assign]
    assert live.flush() == 1  # quick (the fake clock stands still)
    assert _lean(live)


def test_no_lean_answer_while_the_flush_loop_is_late(clock: Clock) -> None:
    live = _worker(clock)
    clock.now += liveness.FLUSH + liveness.SLOW / 2
    assert _lean(live)
    clock.now += liveness.SLOW  # no flush ended for 0.25 s: the next one is overdue
    assert not _lean(live)


def test_a_failed_flush_counts_as_slow_when_it_was(clock: Clock) -> None:
    live = _worker(clock)

    def failing(beats: dict[str, Any], serials: dict[str, str]) -> int:
        clock.now += 0.3
        raise RuntimeError("database gone")

    live._write = failing  # type: ignore[method-assign]
    assert _lean(live)
    with pytest.raises(RuntimeError):
        live.flush()
    assert "n0" in live._buffer and live._began is None  # kept; no flush runs
    assert not _lean(live)


def test_the_loop_writes_what_a_slow_flush_left_at_once(monkeypatch: pytest.MonkeyPatch,
                                                        ) -> None:
    live = Liveness(None)
    pauses: list[float] = []

    class Stop:
        def wait(self, pause: float) -> bool:
            pauses.append(pause)
            return len(pauses) > 3

    took = iter([0.3, 0.05, 0.3])

    def flush() -> int:
        live._took = next(took)
        live._buffer = {"n0": object()} if live._took > liveness.SLOW else {}
        return 0

    live._stop = Stop()  # type: ignore[assignment]
    monkeypatch.setattr(live, "flush", flush)
    live._run()
    assert pauses == [liveness.FLUSH, 0.0, liveness.FLUSH, 0.0]
