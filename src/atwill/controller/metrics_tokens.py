"""The token validation cache seen from /metrics: lookups by result, and entries held.

Counted by wrapping the controller's cache rather than inside it, so the cache keeps no
knowledge of Prometheus: every lookup goes through get(), and a None from it is a miss
(nothing kept, expired, or dropped by an identity change). The hit rate is
`rate(…{result="hit"}) / sum(rate(…))`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class CountedCache:
    """The cache itself for every caller, with its get() results counted."""

    def __init__(self, cache: Any, lookups: Counter) -> None:
        self.cache = cache
        self._hit, self._miss = lookups.labels("hit"), lookups.labels("miss")

    def get(self, key: str) -> Any | None:
        value = self.cache.get(key)
        (self._miss if value is None else self._hit).inc()
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cache, name)

    def __len__(self) -> int:
        # The cache has no size of its own to ask; its entries are an ordered dict.
        entries = getattr(self.cache, "_entries", None)
        return len(entries) if entries is not None else 0


class CacheSize(Collector):
    def __init__(self, cache: CountedCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("atwill_token_cache_entries", "Validated tokens this "
                                "controller process holds in its cache.", value=len(self.cache))


def count_lookups(ctl: Any, registry: CollectorRegistry) -> CountedCache:
    """Replace ctl.tokens by a counted view of it, registered in registry."""
    lookups = Counter("atwill_token_cache_lookups", "Token validations looked up in this "
                      "process's cache, by result (hit: no database read).", ["result"],
                      registry=registry)
    # An app built again on the same controller (tests) counts into its own registry.
    inner = ctl.tokens.cache if isinstance(ctl.tokens, CountedCache) else ctl.tokens
    counted = CountedCache(inner, lookups)
    ctl.tokens = counted
    registry.register(CacheSize(counted))
    return counted
