"""A throttle for work a loop may do only now and then (the monitor loop runs several
times a second; its sweeps run every few seconds or minutes)."""

from __future__ import annotations

import time


class Every:
    """due() is true at most once every `seconds` (monotonic clock)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.last = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True
