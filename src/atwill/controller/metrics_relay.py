"""The instance counters nodes send with their heartbeats, kept for /metrics to relay.

Kept in this process's memory, not in the database: they change on every heartbeat of
every node, and writing each instance's row that often would cost more than the
scrape is worth. Each controller replica therefore relays the counters of the
heartbeats it received (scrape every replica, take `max by (instance_id)`); after a
restart they are back with each node's next heartbeat. Only the latest report of each
node is kept, so instances a node no longer reports drop out with it.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from typing import Any

from ..core.instance_counters import REPORT_KEY


class CounterRelay:
    """node id -> {instance id -> counters}, the node's last report only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, dict[str, dict[str, float]]] = {}

    def record(self, node_id: str, instances: Mapping[str, Any]) -> None:
        """Keep the counters of a node's heartbeat (checked by core.instance_counters)."""
        latest = {uuid: dict(entry[REPORT_KEY]) for uuid, entry in instances.items()
                  if isinstance(entry, dict) and isinstance(entry.get(REPORT_KEY), dict)}
        with self._lock:
            self._nodes[node_id] = latest

    def of(self, node_id: str) -> dict[str, dict[str, float]]:
        with self._lock:
            return dict(self._nodes.get(node_id, {}))

    def retain(self, node_ids: Collection[str]) -> None:
        """Forget the nodes that are gone (removed, or rejoined under a new id)."""
        with self._lock:
            for gone in set(self._nodes) - set(node_ids):
                del self._nodes[gone]


RELAY = CounterRelay()
