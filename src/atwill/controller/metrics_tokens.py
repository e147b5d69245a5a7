"""The token validation cache seen from /metrics: lookups by result, and entries held.

Counted by wrapping the controller's cache rather than inside it, so the cache keeps no
knowledge of Prometheus: every lookup goes through get(), and a None from it is a miss
(nothing kept, expired, or dropped by an identity change). The hit rate is
`rate(…{result="hit"}) / sum(rate(…))`.

Served from several worker processes (prometheus_client's multiprocess mode), each
worker has a cache of its own: the entries are then a gauge each worker sets at its
lookups and a scrape sums over the live workers (livesum).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class CountedCache:
    """The cache itself for every caller, with its get() results counted."""

    def __init__(self, cache: Any, lookups: Counter, entries: Gauge | None = None) -> None:
        self.cache, self.entries = cache, entries
        self._hit, self._miss = lookups.labels("hit"), lookups.labels("miss")

    def get(self, key: str) -> Any | None:
        value = self.cache.get(key)
        (self._miss if value is None else self._hit).inc()
        if self.entries is not None:  # as of this worker's last lookup
            self.entries.set(len(self))
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cache, name)

    def __len__(self) -> int:
        # The cache has no size of its own to ask; its entries are an ordered dict.
        entries = getattr(self.cache, "_entries", None)
        return len(entries) if entries is not None else 0


ENTRIES = "atwill_token_cache_entries"
ENTRIES_HELP = "Validated tokens the controller's processes hold in their caches."


class CacheSize(Collector):
    def __init__(self, cache: CountedCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(ENTRIES, ENTRIES_HELP, value=len(self.cache))


def count_lookups(ctl: Any, registry: CollectorRegistry,
                  shared: bool = False) -> CountedCache:
    """Replace ctl.tokens by a counted view of it, registered in registry; shared: several
    worker processes, whose entries are summed from prometheus_client's files."""
    lookups = Counter("atwill_token_cache_lookups", "Token validations looked up in this "
                      "process's cache, by result (hit: no database read).", ["result"],
                      registry=registry)
    # An app built again on the same controller (tests) counts into its own registry.
    inner = ctl.tokens.cache if isinstance(ctl.tokens, CountedCache) else ctl.tokens
    entries = Gauge(ENTRIES, ENTRIES_HELP, registry=registry,
                    multiprocess_mode="livesum") if shared else None
    counted = CountedCache(inner, lookups, entries)
    ctl.tokens = counted
    if not shared:
        registry.register(CacheSize(counted))
    return counted
