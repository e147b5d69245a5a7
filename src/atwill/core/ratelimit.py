"""Token buckets per client address: how password logins are throttled before hashing.

Each argon2 verification costs ~19 MiB and tens of milliseconds, so a burst of
logins from one address is refused with a 429 before any hash is computed. A bucket
holds up to `burst` tokens and refills at `rate` tokens a second; a login takes one.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# An IPv6 client owns at least a /64: keying by the whole address would give each of its
# 2**64 addresses a full bucket.
IPV6_PREFIX = 64
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


def source_key(host: str) -> str:
    """The bucket of a client address: itself for IPv4, its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


class Slots:
    """At most `size` password checks at once, whatever the number of sources.

    Buckets bound each source; this bounds them all together (argon2's memory times
    the worker threads), so many sources cannot exhaust the controller either.
    """

    def __init__(self, size: int, wait: float = 5.0) -> None:
        self._free = threading.BoundedSemaphore(max(size, 1))
        self.wait = wait

    @contextmanager
    def held(self) -> Iterator[bool]:
        """Yields whether a slot was had within `wait` seconds (released on exit)."""
        got = self._free.acquire(timeout=self.wait)
        try:
            yield got
        finally:
            if got:
                self._free.release()
