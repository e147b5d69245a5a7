"""Each node's and each instance's resources for /metrics, from what the compute API shows.

Node figures come from the same rows and columns as `openstack hypervisor show` and
`hypervisor stats` (compute/hypervisors.py), up or down by the same rule
(compute/nodes.is_up), so a dashboard and the CLI never disagree. Sizes are in bytes,
as Prometheus' conventions want (Nova's MB are MiB, its GB GiB). An instance's CPU
time, resident memory and disk and network bytes are its node's own readings relayed
from the heartbeats (metrics_relay), shown only for instances still on that node.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..core.ha_health import DOWN, SUSPECT, UP
from ..core.restart_notice import RESTARTING
from .compute.nodes import all_nodes, is_up
from .context import Controller
from .db.models import Instance, Node
from .ha import silence_guard
from .metrics_host import host_families
from .metrics_reconcile import reconcile_families
from .metrics_relay import CounterRelay, FileRelay, relay_for

MIB, GIB = 2 ** 20, 2 ** 30
# (metric, help, Node column, scale)
NODE_GAUGES = (
    ("atwill_node_vcpus", "vCPUs the node offers.", "vcpus", 1),
    ("atwill_node_vcpus_used", "vCPUs claimed by the node's instances.", "vcpus_used", 1),
    ("atwill_node_memory_bytes", "Memory the node offers.", "memory_mb", MIB),
    ("atwill_node_memory_used_bytes", "Memory claimed by the node's instances.",
     "memory_mb_used", MIB),
    ("atwill_node_disk_bytes", "Local disk the node offers.", "local_gb", GIB),
    ("atwill_node_disk_used_bytes", "Local disk claimed by the node's instances.",
     "local_gb_used", GIB),
    ("atwill_node_running_vms", "Instances whose QEMU runs, as the node last reported.",
     "running_vms", 1),
)
# The heartbeat's key -> (metric, help); counters get Prometheus' _total suffix.
RELAYED_COUNTERS = {
    "cpu_seconds": ("atwill_instance_cpu_seconds", "CPU time of the instance's QEMU "
                    "process (user and system), as its node reads it."),
    "disk_read_bytes": ("atwill_instance_disk_read_bytes", "Bytes the guest read from "
                        "its disks."),
    "disk_write_bytes": ("atwill_instance_disk_written_bytes", "Bytes the guest wrote to "
                         "its disks."),
    "net_rx_bytes": ("atwill_instance_network_receive_bytes", "Bytes the guest received "
                     "on its NICs."),
    "net_tx_bytes": ("atwill_instance_network_transmit_bytes", "Bytes the guest sent on "
                     "its NICs."),
}
RELAYED_GAUGES = {
    "memory_rss_bytes": ("atwill_instance_memory_resident_bytes", "Resident memory of "
                         "the instance's QEMU process."),
}
INSTANCE_LABELS = ["instance_id", "project_id", "node"]


class Inventory(Collector):
    """Per node: state, health, resources, instances; per instance: state, size, counters."""

    def __init__(self, ctl: Controller, relay: CounterRelay | FileRelay | None = None) -> None:
        self.ctl, self.relay = ctl, relay if relay is not None else relay_for(ctl)

    def collect(self) -> Iterator[Metric]:
        with self.ctl.db.session() as session:
            nodes = all_nodes(session)
            yield from node_families(nodes, _instance_counts(session))
            yield from silence_guard.families(self.ctl, nodes)
            yield from reconcile_families(nodes)
            yield from host_families(nodes)
            rows = session.execute(select(
                Instance.id, Instance.project_id, Instance.node_id, Instance.node_name,
                Instance.vm_state, Instance.vcpus, Instance.memory_mb, Instance.disk_gb)
                .where(Instance.deleted.is_(False)).order_by(Instance.id)).all()
        self.relay.retain([n.id for n in nodes])
        yield from instance_families(rows, self.relay)


def _instance_counts(session: Session) -> dict[str, int]:
    return dict(session.execute(
        select(Instance.node_id, func.count(Instance.id))
        .where(Instance.deleted.is_(False), Instance.node_id.is_not(None))
        .group_by(Instance.node_id)).all())


def node_families(nodes: list[Node], instances: dict[str, int]) -> Iterator[Metric]:
    up = GaugeMetricFamily("atwill_node_up", "1 when the node is up (hypervisor state "
                           "up), 0 when down.", labels=["node"])
    enabled = GaugeMetricFamily("atwill_node_enabled", "1 when the node takes new "
                                "instances (hypervisor status enabled).", labels=["node"])
    health = GaugeMetricFamily("atwill_node_health", "The HA monitor's view of the node "
                               "from its heartbeats: 1 for its present health.",
                               labels=["node", "health"])
    count = GaugeMetricFamily("atwill_node_instances", "Instances placed on the node, in "
                              "any state.", labels=["node"])
    gauges = [(GaugeMetricFamily(name, text, labels=["node"]), column, scale)
              for name, text, column, scale in NODE_GAUGES]
    for node in nodes:
        up.add_metric([node.name], 1 if is_up(node) else 0)
        enabled.add_metric([node.name], 1 if node.enabled else 0)
        for state in (UP, SUSPECT, DOWN, RESTARTING):
            health.add_metric([node.name, state], 1 if node.health == state else 0)
        count.add_metric([node.name], instances.get(node.id, 0))
        for family, column, scale in gauges:
            family.add_metric([node.name], getattr(node, column) * scale)
    yield from (up, enabled, health, count)
    yield from (family for family, _, _ in gauges)


def instance_families(rows: list[Any], relay: CounterRelay | FileRelay) -> Iterator[Metric]:
    state = GaugeMetricFamily("atwill_instance_state", "1 for the instance's present "
                              "vm_state.", labels=[*INSTANCE_LABELS, "state"])
    sizes = [(GaugeMetricFamily(f"atwill_instance_{what}", text, labels=INSTANCE_LABELS),
              column, scale) for what, text, column, scale in (
        ("vcpus", "vCPUs of the instance's flavor.", 5, 1),
        ("memory_bytes", "Memory of the instance's flavor.", 6, MIB),
        ("disk_bytes", "Root disk of the instance's flavor.", 7, GIB))]
    relayed: dict[str, Any] = {
        key: CounterMetricFamily(name, text, labels=INSTANCE_LABELS)
        for key, (name, text) in RELAYED_COUNTERS.items()}
    relayed.update({key: GaugeMetricFamily(name, text, labels=INSTANCE_LABELS)
                    for key, (name, text) in RELAYED_GAUGES.items()})
    readings: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        labels = [row[0], row[1], row[3] or ""]
        state.add_metric([*labels, row[4]], 1)
        for family, column, scale in sizes:
            family.add_metric(labels, row[column] * scale)
        if row[2] is None:
            continue
        if row[2] not in readings:
            readings[row[2]] = relay.of(row[2])
        for key, value in readings[row[2]].get(row[0], {}).items():
            if key in relayed:
                relayed[key].add_metric(labels, value)
    yield state
    yield from (family for family, _, _ in sizes)
    yield from relayed.values()
