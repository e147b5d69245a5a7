"""Token buckets per client address: how password logins are throttled before hashing.

Each argon2 verification costs ~19 MiB and tens of milliseconds, so a burst of
logins from one address is refused with a 429 before any hash is computed. A bucket
holds up to `burst` tokens and refills at `rate` tokens a second; a login takes one.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

# Addresses remembered at once; the least recently seen is forgotten first (it then
# starts again with a full bucket, which bounds memory whatever the callers do).
MAX_KEYS = 10_000


class TokenBuckets:
    def __init__(self, rate: float, burst: int, max_keys: int = MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_keys, self.clock = rate, max(burst, 1), max_keys, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        """Take a token for key: 0.0 when granted, else the seconds until one is due."""
        if not self.enabled:
            return 0.0
        with self._lock:
            now = self.clock()
            tokens, then = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            granted = tokens >= 1.0
            if granted:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return 0.0 if granted else (1.0 - tokens) / self.rate
