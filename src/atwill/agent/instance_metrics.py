"""Each running instance's CPU time, memory, disk and network bytes, for the heartbeat.

Read from the instance's QEMU process: /proc/<pid>/stat (CPU time, resident memory),
QMP query-blockstats (disk bytes), and /proc/<pid>/net/dev for its taps' bytes — the
process's own view of the network, right also where QEMU runs in a namespace of its own
(the lab's launcher) and /sys/class/net of the agent would not show its taps.

A reading is taken at most every `every` seconds per instance (Prometheus scrapes every
15 s or more; the heartbeat runs every second), and the last one is sent meanwhile.
QMP is asked with a short timeout: a monitor busy with a lane's command costs this
reading only, never the heartbeat its time.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from ..core import instance_counters as counters
from .hypervisor.base import Hypervisor
from .hypervisor.qmp import QMP, QMPError

log = logging.getLogger("atwill.agent.metrics")
EVERY = 10.0
QMP_TIMEOUT = 0.5


class InstanceMetrics:
    """The last counters read for each instance, refreshed when older than `every`."""

    def __init__(self, driver: Hypervisor, every: float = EVERY) -> None:
        self.driver, self.every = driver, every
        self._last: dict[str, tuple[float, dict[str, Any]]] = {}

    def sample(self, uuid: str) -> dict[str, Any] | None:
        """The instance's counters (read now, or the last reading if recent), or None."""
        now = time.monotonic()
        kept = self._last.get(uuid)
        if kept is not None and now - kept[0] < self.every:
            return kept[1]
        try:
            reading = self._read(uuid)
        except Exception:  # noqa: BLE001 - a reading must never cost the node its heartbeat
            log.warning("instance %s: reading its counters failed", uuid, exc_info=True)
            reading = {}
        if reading:
            self._last[uuid] = (now, reading)
            return reading
        return kept[1] if kept else None

    def forget(self, alive: set[str]) -> None:
        """Drop the readings of instances that are gone."""
        for uuid in set(self._last) - alive:
            del self._last[uuid]

    def _read(self, uuid: str) -> dict[str, Any]:
        pid = self.driver.pid(uuid)
        if pid is None:
            return {}
        out: dict[str, Any] = {}
        proc = f"/proc/{pid}"
        try:
            with open(f"{proc}/stat") as stat:
                cpu, rss = counters.cpu_and_rss(stat.read(), os.sysconf("SC_CLK_TCK"),
                                                os.sysconf("SC_PAGE_SIZE"))
            out.update(cpu_seconds=round(cpu, 2), memory_rss_bytes=rss)
            taps = {nic.tap for nic in self.driver.spec(uuid).nics}
            with open(f"{proc}/net/dev") as dev:
                out["net_rx_bytes"], out["net_tx_bytes"] = counters.tap_bytes(dev.read(), taps)
        except (OSError, ValueError, IndexError, RuntimeError) as err:
            log.debug("instance %s: no process counters (%s)", uuid, err)
        try:
            with QMP(self.driver.paths(uuid).qmp, QMP_TIMEOUT) as qmp:
                stats = qmp.execute("query-blockstats")
            out["disk_read_bytes"], out["disk_write_bytes"] = counters.block_bytes(stats or [])
        except (QMPError, OSError, ValueError, TypeError) as err:
            log.debug("instance %s: no block counters (%s)", uuid, err)
        return out
