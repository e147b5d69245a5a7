"""Lanes: one operation at a time per instance, different instances at the same time.

A guest that ignores ACPI holds its stop for a minute and an image can take minutes to
arrive; neither may hold up another instance. Work for a busy instance is not queued: the
next converge (each desired change, and the reconciler every few seconds) brings the
instance to what is wanted then, which may differ from what was wanted when it was busy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("atwill.agent.lanes")


class Lanes:
    """At most one piece of work per key, at most `workers` pieces at once."""

    def __init__(self, workers: int = 8, on_done: Callable[[], None] = lambda: None) -> None:
        self._slots = threading.BoundedSemaphore(workers)
        self._running: dict[str, threading.Thread] = {}
        self._guard = threading.Lock()
        self._idle = threading.Condition(self._guard)
        self.on_done = on_done

    def submit(self, key: str, work: Callable[..., Any], *args: Any) -> bool:
        """Start work(*args) for key unless key is busy; whether it started."""
        with self._guard:
            if key in self._running:
                return False
            # Daemon threads: an agent that stops never waits for a guest's ACPI timeout
            # (QEMU runs on without the agent, which finds it again when it starts).
            thread = threading.Thread(target=self._run, args=(key, work, args), daemon=True,
                                      name=f"instance-{key[:8]}")
            self._running[key] = thread
        thread.start()
        return True

    def busy(self, key: str) -> bool:
        """Whether work for key is running or waiting for a slot."""
        with self._guard:
            return key in self._running

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no work runs; whether that happened within timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._running, timeout)

    def _run(self, key: str, work: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            with self._slots:
                work(*args)
        except Exception:  # noqa: BLE001 - work reports its own errors; a lane never dies
            log.exception("instance %s: work failed", key)
        finally:
            with self._idle:
                del self._running[key]
                self._idle.notify_all()
            self.on_done()
