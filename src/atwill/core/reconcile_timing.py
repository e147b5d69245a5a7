"""How long a node's reconcile passes take, and how many fail, as its heartbeat reports them.

The agent counts each pass (a new desired state applied, or the periodic re-check) into
a fixed set of buckets and sends the cumulative figures in its heartbeat's host report
under REPORT_KEY; the controller keeps them with the node's host status and turns them
into a Prometheus histogram at each scrape. Fixed buckets keep the report a few dozen
bytes; cumulative figures (reset only when the agent restarts) are what Prometheus'
rate() and histogram_quantile() expect.
"""

from __future__ import annotations

import math
import threading
from typing import Any

REPORT_KEY = "reconcile"
# Seconds: a quiet re-check takes milliseconds, starting VMs or fetching images seconds.
BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
LIMIT = 2.0 ** 53  # past this a count is not a count any more (JSON numbers are doubles)


class ReconcileTimes:
    """The agent's side: cumulative bucket counts, sum, count and failures of its passes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets = [0] * len(BUCKETS)
        self._sum = 0.0
        self._count = 0
        self._failures = 0

    def observe(self, seconds: float, failed: bool) -> None:
        """One pass that took `seconds`; `failed` when it raised."""
        seconds = max(seconds, 0.0)
        with self._lock:
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self._buckets[index] += 1
            self._sum += seconds
            self._count += 1
            self._failures += 1 if failed else 0

    def report(self) -> dict[str, Any]:
        """What the heartbeat carries: {buckets, sum, count, failures}."""
        with self._lock:
            return {"buckets": list(self._buckets), "sum": round(self._sum, 6),
                    "count": self._count, "failures": self._failures}


def read_report(value: Any) -> dict[str, Any] | None:
    """A node's report if it is well formed (bucket counts cumulative and within count),
    else None: a scrape skips a node that sent nonsense rather than failing for all."""
    if not isinstance(value, dict):
        return None
    buckets, total, count, failures = (value.get(k) for k in
                                       ("buckets", "sum", "count", "failures"))
    if not (isinstance(buckets, list) and len(buckets) == len(BUCKETS)):
        return None
    if not all(_count(n) for n in (*buckets, count, failures)) or not _number(total):
        return None
    if any(a > b for a, b in zip(buckets, [*buckets[1:], count], strict=True)):
        return None  # not cumulative, or more in a bucket than passes in all
    if failures > count:
        return None
    return {"buckets": buckets, "sum": float(total), "count": count, "failures": failures}


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < LIMIT


def _number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and 0 <= value < LIMIT)
