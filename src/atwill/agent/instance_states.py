"""Each instance's state for the heartbeat, asked of its QEMU without holding the beat up.

A QEMU whose main loop is busy (an NBD server that does not answer, a long QMP command
such as a live migration's blockdev-add) answers its monitor late or not at all. Asked
in line, as the heartbeat once did (5 s per try, three tries), one such QEMU delayed
the node's heartbeat past the controller's down threshold: the whole node was then
fenced and every VM on it evacuated, for one busy guest.

So the questions run in a small pool and the heartbeat waits at most `budget` seconds
for them. An instance whose answer is late keeps the state it was last reported in
(or "running" if never heard: its QEMU process is alive, only its monitor is busy),
and its question stays in flight, never asked twice at once. A failed answer becomes
"error" only after `patience` failures in a row, so a monitor that was merely busy
(QEMU serves one QMP client at a time) is not reported as a broken VM.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait

BUSY = "running"  # a late answer from a QEMU never heard before: alive, monitor busy


class InstanceStates:
    def __init__(self, state_of: Callable[[str], str], budget: float = 0.5,
                 patience: int = 3, workers: int = 4) -> None:
        self.state_of, self.budget, self.patience = state_of, budget, patience
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qmp-state")
        self._lock = threading.Lock()
        self._asked: dict[str, Future[str]] = {}
        self._known: dict[str, str] = {}
        self._failures: dict[str, int] = {}

    def states(self, uuids: Iterable[str]) -> dict[str, str]:
        """The state of each instance, within about `budget` seconds however QEMU fares."""
        wanted = list(uuids)
        with self._lock:
            for uuid in wanted:
                if uuid not in self._asked:
                    self._asked[uuid] = self._pool.submit(self.state_of, uuid)
            asked = {uuid: self._asked[uuid] for uuid in wanted}
        wait(asked.values(), timeout=self.budget)
        with self._lock:
            out = {uuid: self._settle(uuid, future) for uuid, future in asked.items()}
            for gone in set(self._known) - set(wanted):
                self._known.pop(gone, None)
                self._failures.pop(gone, None)
        return out

    def _settle(self, uuid: str, future: Future[str]) -> str:
        if not future.done():
            return self._known.get(uuid, BUSY)
        del self._asked[uuid]
        try:
            state = future.result()
        except Exception:  # noqa: BLE001 - an unreadable state is an error like QEMU's
            state = "error"
        if state == "error":
            failures = self._failures[uuid] = self._failures.get(uuid, 0) + 1
            if failures < self.patience:
                return self._known.get(uuid, BUSY)
        else:
            self._failures.pop(uuid, None)
        self._known[uuid] = state
        return state

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
