"""Each node host's own usage for /metrics, as its agent last reported it.

The agent reads its host (agent/host_metrics.py) and sends the figures in its
heartbeat's host report; the controller keeps what core/host_figures accepts with the
node's row, as it keeps the reconcile figures (metrics_reconcile.py), so every worker
and every replica shows the same figures, as of the node's last heartbeat. Names are
node_exporter's under atwill_node_, labelled by node; a node whose agent sent none
(an older agent) has no series rather than zeros.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..core.host_figures import CPU_KEY, REPORT_KEY, accepted
from .db.models import Node

# The report's key -> (metric, help)
GAUGES = {
    "memory_total_bytes": ("atwill_node_memory_total_bytes", "The node host's memory "
                           "(MemTotal), as its agent reads it."),
    "memory_available_bytes": ("atwill_node_memory_available_bytes", "Memory available "
                               "for new work on the node host (MemAvailable)."),
    "load1": ("atwill_node_load1", "The node host's 1-minute load average."),
    "load5": ("atwill_node_load5", "The node host's 5-minute load average."),
    "load15": ("atwill_node_load15", "The node host's 15-minute load average."),
    "filesystem_size_bytes": ("atwill_node_filesystem_size_bytes", "Size of the filesystem "
                              "holding the node's instances directory."),
    "filesystem_avail_bytes": ("atwill_node_filesystem_avail_bytes", "Space left to "
                               "unprivileged users on the filesystem holding the node's "
                               "instances directory."),
}
COUNTERS = {
    "overlay_receive_bytes": ("atwill_node_overlay_receive_bytes", "Bytes the node host "
                              "received on its overlay interface."),
    "overlay_transmit_bytes": ("atwill_node_overlay_transmit_bytes", "Bytes the node host "
                               "sent on its overlay interface."),
}


def host_families(nodes: Iterable[Node]) -> Iterator[Metric]:
    cpu = CounterMetricFamily("atwill_node_cpu_seconds", "Seconds the node host's CPUs "
                              "spent in each mode (all CPUs summed), from /proc/stat.",
                              labels=["node", "mode"])
    families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
        key: GaugeMetricFamily(name, text, labels=["node"])
        for key, (name, text) in GAUGES.items()}
    families.update({key: CounterMetricFamily(name, text, labels=["node"])
                     for key, (name, text) in COUNTERS.items()})
    for node in nodes:
        # Checked again: a row written before the check, or by hand, never fails a scrape.
        report = accepted((node.host_status or {}).get(REPORT_KEY)) or {}
        for mode, seconds in (report.get(CPU_KEY) or {}).items():
            cpu.add_metric([node.name, mode], seconds)
        for key, family in families.items():
            if key in report:
                family.add_metric([node.name], report[key])
    yield cpu
    yield from families.values()
