"""Serving the controller from several worker processes over the same listening sockets.

The parent binds the sockets and forks; each worker builds its own app (database pool,
caches, background tasks) and runs uvicorn on inherited sockets, with the same TLS
setup as a single process (the peer-certificate protocol is a class, which a fork keeps
and uvicorn's spawn-based multiprocess mode would have to import). Each worker slot
has sockets of its own on the same port (SO_REUSEPORT), held by the parent too, so the
kernel spreads connections evenly (one shared socket gave most of them to whichever
worker was awake) and those meant for a dead worker wait for its replacement. The
parent only supervises: a worker that dies is replaced after RESTART_DELAY; a signal
is passed on to every worker, which finish their requests as a single process would;
the parent then re-raises it, as uvicorn does. A parent killed outright (SIGKILL, a
crash) takes its workers with it (PR_SET_PDEATHSIG): a worker left behind would hold
the port and the leader lock against a restart.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
import traceback
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("atwill.controller")
SIGNALS = (signal.SIGINT, signal.SIGTERM)
RESTART_DELAY = 1.0
# Workers dying within EARLY seconds of their start, this many times in a row: the
# controller cannot start (a bad database URL, say); the parent gives up.
EARLY, EARLY_LIMIT = 5.0, 5
PR_SET_PDEATHSIG = 1


class Prefork:
    """count workers each running serve(slot), slot 0..count-1 (a replacement takes the
    dead worker's slot); on_exit runs at the first signal."""

    def __init__(self, count: int, serve: Callable[[int], None],
                 on_exit: Callable[[], None] | None = None) -> None:
        self.count, self.serve, self.on_exit = count, serve, on_exit
        self.children: dict[int, tuple[float, int]] = {}  # pid: (monotonic start, slot)
        self.signals: list[int] = []
        self.early = 0

    def run(self) -> int:
        """Until a signal and every worker's exit; the exit status for the parent."""
        original = {sig: signal.signal(sig, self._signalled) for sig in SIGNALS}
        try:
            for slot in range(self.count):
                self._spawn(slot)
            status = self._supervise()
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
        if self.signals:
            signal.raise_signal(self.signals[0])
        return status

    def _signalled(self, sig: int, _frame: FrameType | None) -> None:
        if not self.signals and self.on_exit is not None:
            self.on_exit()
        self.signals.append(sig)
        self._kill(signal.SIGTERM)

    def _kill(self, sig: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _spawn(self, slot: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            die_with(parent)
            os._exit(self._child(slot))
        self.children[pid] = (time.monotonic(), slot)
        if self.signals:  # one came between the fork and the line above
            os.kill(pid, signal.SIGTERM)
        log.info("controller worker %d started", pid)

    def _child(self, slot: int) -> int:
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        try:
            self.serve(slot)
        except SystemExit as done:
            return done.code if isinstance(done.code, int) else 1
        except BaseException:  # noqa: BLE001 - said on stderr; the parent restarts it
            traceback.print_exc()
            return 1
        return 0

    def _supervise(self) -> int:
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            child = self.children.pop(pid, None)
            if child is None or self.signals:
                continue
            started, slot = child
            log.warning("controller worker %d ended (%s); starting another", pid,
                        describe(status))
            self.early = self.early + 1 if time.monotonic() - started < EARLY else 0
            if self.early >= EARLY_LIMIT:
                log.error("controller workers keep failing at start; stopping")
                self._kill(signal.SIGTERM)
                self._reap()
                return 1
            time.sleep(RESTART_DELAY)
            if not self.signals:
                self._spawn(slot)
        return 0

    def _reap(self) -> None:
        while self.children:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                return
            self.children.pop(pid, None)


def die_with(parent: int) -> None:
    """Be killed when the parent dies (Linux); exit now if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: a crashed parent leaves workers
        return
    if os.getppid() != parent:
        os._exit(1)


def describe(status: int) -> str:
    """A wait status in words: 'exit 1', 'signal 9'."""
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.waitstatus_to_exitcode(status)}"
