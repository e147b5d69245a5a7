"""The scheduler's outcomes, counted in this process for /metrics.

A counter of the process (every app built in it shares it): Prometheus sums the
replicas' counts itself, and a restart is a counter reset its rate() already handles.
"""

from __future__ import annotations

from prometheus_client import Counter

RESULTS = ("placed", "no_valid_host")
PLACEMENTS = Counter("atwill_scheduler_placements", "Scheduling decisions for instances "
                     "(create, retry, unshelve, evacuation), by result.", ["result"],
                     registry=None)
for _result in RESULTS:
    PLACEMENTS.labels(_result)  # both series exist from the start, at 0


def counted(result: str) -> None:
    """One scheduling decision: placed, or no_valid_host."""
    PLACEMENTS.labels(result).inc()
