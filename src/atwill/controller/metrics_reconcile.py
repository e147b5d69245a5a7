"""Each node's reconcile passes for /metrics: durations as a histogram, failures as a counter.

The agent counts them (core/reconcile_timing.py) and sends the cumulative figures with
its heartbeat's host report, which the controller keeps in the node's row; so every
replica shows the same figures, as of the node's last heartbeat. A node whose agent
predates the report, or sent a malformed one, has no series (rather than zeros that
would read as "no passes").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from ..core.reconcile_timing import BUCKETS, REPORT_KEY, read_report
from .db.models import Node


def reconcile_families(nodes: Iterable[Node]) -> Iterator[Metric]:
    durations = HistogramMetricFamily(
        "atwill_node_reconcile_duration_seconds", "Time the node's agent took to converge "
        "its host to the desired state, per pass (a new revision or the periodic re-check).",
        labels=["node"])
    failures = CounterMetricFamily(
        "atwill_node_reconcile_failures", "Reconcile passes of the node's agent that "
        "failed (retried at the next pass).", labels=["node"])
    for node in nodes:
        report = read_report((node.host_status or {}).get(REPORT_KEY))
        if report is None:
            continue
        buckets = [(floatToGoString(bound), count)
                   for bound, count in zip(BUCKETS, report["buckets"], strict=True)]
        buckets.append(("+Inf", report["count"]))
        durations.add_metric([node.name], buckets, report["sum"])
        failures.add_metric([node.name], report["failures"])
    yield from (durations, failures)
