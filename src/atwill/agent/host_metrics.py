"""The node host's own CPU, memory, load, disk and overlay figures, for the heartbeat.

Read from /proc/stat, /proc/meminfo, /proc/loadavg, statvfs of the instances directory
and /sys/class/net/IFACE/statistics of the overlay interface (parsed in
core/host_figures). A reading is taken at most every `every` seconds (the heartbeat
runs every second, Prometheus scrapes every 15 s or more), and the last one is sent
meanwhile. A figure that cannot be read (no overlay yet, /proc hidden) is left out;
a reading never costs the heartbeat.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core import host_figures as figures

log = logging.getLogger("atwill.agent.metrics")
EVERY = 10.0
PROC = Path("/proc")
SYS_NET = Path("/sys/class/net")


class HostMetrics:
    """The host's last reading, refreshed when older than `every` seconds."""

    def __init__(self, instances_dir: Path, overlay_interface: Callable[[], str | None],
                 every: float = EVERY, proc: Path = PROC, sys_net: Path = SYS_NET) -> None:
        self.instances_dir, self.overlay_interface = instances_dir, overlay_interface
        self.every, self.proc, self.sys_net = every, proc, sys_net
        self._last: tuple[float, dict[str, Any]] | None = None

    def sample(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < self.every:
            return self._last[1]
        try:
            reading = self.read()
        except Exception:  # noqa: BLE001 - a reading must never cost the node its heartbeat
            log.warning("reading the host's figures failed", exc_info=True)
            reading = {}
        self._last = (now, reading)
        return reading

    def read(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, parse in (("stat", self._cpu), ("meminfo", figures.memory_bytes),
                            ("loadavg", figures.load_average)):
            try:
                found = parse((self.proc / name).read_text())
            except (OSError, ValueError, IndexError) as err:
                log.debug("no host figures from /proc/%s (%s)", name, err)
                continue
            if name == "stat":
                if found:
                    out[figures.CPU_KEY] = found
            else:
                out.update(found)
        try:
            # The instances directory's filesystem: where disks and overlays grow.
            directory = self.instances_dir if self.instances_dir.exists() \
                else self.instances_dir.parent
            vfs = os.statvfs(directory)
            out.update(figures.filesystem_bytes(vfs.f_frsize, vfs.f_blocks, vfs.f_bavail))
        except OSError as err:
            log.debug("no filesystem figures (%s)", err)
        out.update(self._overlay())
        return out

    def _cpu(self, text: str) -> dict[str, float]:
        return figures.cpu_seconds(text, os.sysconf("SC_CLK_TCK"))

    def _overlay(self) -> dict[str, int]:
        name = self.overlay_interface()
        if not name or "/" in name or name.startswith("."):
            return {}
        statistics = self.sys_net / name / "statistics"
        try:
            return {"overlay_receive_bytes": int((statistics / "rx_bytes").read_text()),
                    "overlay_transmit_bytes": int((statistics / "tx_bytes").read_text())}
        except (OSError, ValueError) as err:
            log.debug("no overlay figures for %s (%s)", name, err)
            return {}


def overlay_interface(driver: Any) -> Callable[[], str | None]:
    """The overlay interface of an OverlayDriver, once it has chosen WireGuard or OpenVPN."""
    return lambda: getattr(getattr(driver, "_impl", None), "ifname", None)
