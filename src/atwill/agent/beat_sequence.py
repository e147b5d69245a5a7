"""The order stamped on each heartbeat: this run's epoch and a sequence (core/beat_order).

The epoch is kept in STATE_DIR/beat_epoch and raised at every start, so a restarted
agent's beats order after its previous run's; the sequence is raised at every beat sent
(a beat sent again to the next controller gets the next one: agent/client.Failover).
A stale answer naming a pair above the highest this run issued (a later epoch: the file
went back, a state dir restored from a copy; or this epoch with a higher seq: the epoch
was reused, its file not written or wiped) makes us take an epoch above it; without
that, every beat of this run would be stale and the node would look dead. Epochs stop
at beat_order.CEILING (logged as an error); a kept one at the ceiling starts again at 1,
which a controller applies over a stored pair at the ceiling. A 409 heartbeat_fenced
(our node held fenced off while we run: a wrong fence) makes us take a new epoch at
once too (fenced), whose next beat returns the node.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

from ..core import beat_order

log = logging.getLogger("atwill.agent")
FILE = "beat_epoch"


class BeatSequence:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE
        self._lock = threading.Lock()
        self.seq = 0
        self.epoch = self._start(None)

    def next(self) -> beat_order.Order:
        """The order of the next beat sent."""
        with self._lock:
            self.seq += 1
            return beat_order.Order(self.epoch, self.seq)

    def header(self) -> str:
        """The next beat's X-Atwill-Heartbeat-Order value."""
        return str(self.next())

    def current(self) -> beat_order.Order:
        with self._lock:
            return beat_order.Order(self.epoch, self.seq)

    def stale(self, held: str | None) -> bool:
        """A stale answer holding `held` (the controller's stored order): whether this run
        took a new epoch because of it (the answer was not a copy of our own beat)."""
        try:
            order = beat_order.parse(held)
        except Exception:  # noqa: BLE001 - a malformed header says nothing
            return False
        with self._lock:
            if not beat_order.restarted_needed(beat_order.Order(self.epoch, self.seq), order):
                return False
            assert order is not None
            self.epoch, self.seq = self._start(order.epoch), 0
        log.warning("the controller holds heartbeat %s, above this run's beats (was %s "
                    "restored from an older copy, wiped or not written?): epoch %d from now "
                    "on", order, self.path, self.epoch)
        if self.epoch >= beat_order.CEILING:
            log.error("the controller holds heartbeat %s, at the epoch ceiling %d: this run "
                      "beats at the ceiling, which the controllers apply unordered; the "
                      "next start begins again at epoch 1", order, beat_order.CEILING)
        return True

    def fenced(self, held: str | None) -> beat_order.Order:
        """A 409 heartbeat_fenced: the controller holds our node fenced off (power
        confirmed off) and takes it back only with a later epoch. We are running, so the
        fence was wrong: take a new epoch at once (above ours and the held one), so the
        next beat returns the node. Returns the new run's first order to come."""
        try:
            order = beat_order.parse(held)
        except Exception:  # noqa: BLE001 - a malformed header: our own epoch alone
            order = None
        with self._lock:
            was = beat_order.Order(self.epoch, self.seq)
            self.epoch, self.seq = self._start(beat_order.fenced_seen(was, order)), 0
            now = beat_order.Order(self.epoch, 1)
        log.error("the controller holds this node fenced off (its power said off) while "
                  "this agent runs (heartbeat %s refused, held %s): epoch %d from now on, "
                  "whose beats return the node", was, order or "unknown", self.epoch)
        return now

    def _start(self, seen: int | None) -> int:
        epoch = beat_order.next_epoch(self._load(), seen)
        tmp = self.path.with_suffix(".tmp")
        try:
            with open(tmp, "w") as out:
                out.write(f"{epoch}\n")
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(self.path)
        except OSError as err:  # the next start may reuse it: stale() then moves past
            log.warning("could not keep the heartbeat epoch in %s: %s", self.path, err)
            with contextlib.suppress(OSError):
                tmp.unlink()
        return epoch

    def _load(self) -> int | None:
        try:
            value = int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None
        return value if 0 < value < beat_order.CEILING else None
