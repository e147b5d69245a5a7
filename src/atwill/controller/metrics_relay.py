"""The instance counters nodes send with their heartbeats, kept for /metrics to relay.

Not in the database: they change on every heartbeat of every node, and writing each
instance's row that often would cost more than the scrape is worth. The controller
keeps each node's latest report in a small file of its own under the state directory
(FileRelay), written whole and renamed into place, so every worker process of the
controller reads the same figures whichever received the heartbeat; a heartbeat
costs one file write. Another controller replica on another host has its own state
directory (scrape every replica, take `max by (instance_id)`). Only the latest report
of each node is kept, so instances a node no longer reports drop out with it.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from ..core.instance_counters import REPORT_KEY

RELAY_DIR = "metrics-relay"


def _latest(instances: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    return {ident: dict(entry[REPORT_KEY]) for ident, entry in instances.items()
            if isinstance(entry, dict) and isinstance(entry.get(REPORT_KEY), dict)}


class CounterRelay:
    """node id -> {instance id -> counters}, the node's last report only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, dict[str, dict[str, float]]] = {}

    def record(self, node_id: str, instances: Mapping[str, Any]) -> None:
        """Keep the counters of a node's heartbeat (checked by core.instance_counters)."""
        latest = _latest(instances)
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


def file_name(node_id: str) -> str | None:
    """The node's file name: its id, only when it is a UUID as written (no path tricks)."""
    try:
        return node_id if str(uuid.UUID(node_id)) == node_id else None
    except (ValueError, TypeError, AttributeError):
        return None


class FileRelay:
    """CounterRelay's interface over one file per node in a directory all workers share."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def record(self, node_id: str, instances: Mapping[str, Any]) -> None:
        name = file_name(node_id)
        if name is None:
            return
        target = self.directory / name
        latest = _latest(instances)
        if not latest and not target.exists():
            return  # a node without counters (no QEMU running) writes nothing
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Unique per writer, so two workers' heartbeats of one node never share a temp.
        temp = self.directory / f".{name}.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(latest, out)
        os.replace(temp, target)  # readers see the old report or the new, never half

    def of(self, node_id: str) -> dict[str, dict[str, float]]:
        name = file_name(node_id)
        if name is None:
            return {}
        try:
            report = json.loads((self.directory / name).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return report if isinstance(report, dict) else {}

    def retain(self, node_ids: Collection[str]) -> None:
        """Forget the nodes that are gone (removed, or rejoined under a new id)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        kept = set(node_ids)
        for name in names:
            if not name.startswith(".") and name not in kept:
                (self.directory / name).unlink(missing_ok=True)


def relay_for(ctl: Any) -> FileRelay:
    """The relay of the controller's state directory."""
    return FileRelay(ctl.settings.path(RELAY_DIR))
