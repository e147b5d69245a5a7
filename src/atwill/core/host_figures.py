"""A node host's own usage, as its agent reads it from /proc and /sys for the heartbeat.

Not its instances' (core/instance_counters): the whole host's CPU time by mode, memory
total and available, load average, the instances directory's filesystem and the
overlay interface's bytes, what node_exporter reports of a host. The agent sends them
in its heartbeat's host report under REPORT_KEY, a fixed set of keys (CPU time summed
over the host's CPUs, never one entry per CPU), so the report stays a few hundred
bytes on any host.

The controller keeps only what `accepted` lets through: known keys with numbers from
0 to 2^64; anything else (an unknown key, a string, a negative or huge number, a
forged dict of thousands of modes) is dropped, never refused: a heartbeat is the
node's liveness, and a bad figure must not cost a node its state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

REPORT_KEY = "metrics"
CPU_KEY = "cpu_seconds"
# /proc/stat's "cpu" line, in its order (proc(5)); guest and guest_nice are already
# counted in user and nice, so node_exporter reports them apart and so do we: not at all.
MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
GAUGES = ("memory_total_bytes", "memory_available_bytes", "load1", "load5", "load15",
          "filesystem_size_bytes", "filesystem_avail_bytes")
COUNTERS = ("overlay_receive_bytes", "overlay_transmit_bytes")
KEYS = (CPU_KEY, *GAUGES, *COUNTERS)
LIMIT = 2.0 ** 64  # the kernel's counters are 64-bit; past that it is not a reading


def cpu_seconds(stat: str, ticks_per_second: int) -> dict[str, float]:
    """Seconds spent in each mode by all the host's CPUs, from /proc/stat."""
    for line in stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [int(value) for value in fields[1:1 + len(MODES)]]
            return {mode: round(count / ticks_per_second, 2)
                    for mode, count in zip(MODES, ticks, strict=False)}
    return {}


def memory_bytes(meminfo: str) -> dict[str, int]:
    """memory_total_bytes and memory_available_bytes from /proc/meminfo (kB there)."""
    wanted = {"MemTotal": "memory_total_bytes", "MemAvailable": "memory_available_bytes"}
    out: dict[str, int] = {}
    for line in meminfo.splitlines():
        name, colon, rest = line.partition(":")
        if colon and name in wanted:
            value = rest.split()
            scale = 1024 if len(value) > 1 and value[1] == "kB" else 1
            out[wanted[name]] = int(value[0]) * scale
    return out


def load_average(loadavg: str) -> dict[str, float]:
    """load1, load5 and load15 from /proc/loadavg."""
    fields = loadavg.split()
    return {name: float(value) for name, value in zip(("load1", "load5", "load15"),
                                                       fields[:3], strict=False)}


def filesystem_bytes(block_size: int, blocks: int, available: int) -> dict[str, int]:
    """Size and space available to unprivileged users, from statvfs (f_frsize, f_blocks,
    f_bavail), as node_exporter's node_filesystem_size_bytes and avail_bytes."""
    return {"filesystem_size_bytes": block_size * blocks,
            "filesystem_avail_bytes": block_size * available}


def accepted(report: Any) -> dict[str, Any] | None:
    """The figures worth keeping from a heartbeat's report, or None when none are."""
    if not isinstance(report, Mapping):
        return None
    kept: dict[str, Any] = {key: report[key] for key in (*GAUGES, *COUNTERS)
                            if key in report and _reading(report[key])}
    cpu = report.get(CPU_KEY)
    if isinstance(cpu, Mapping):
        modes = {mode: cpu[mode] for mode in MODES if mode in cpu and _reading(cpu[mode])}
        if modes:
            kept[CPU_KEY] = modes
    return kept or None


def _reading(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and 0 <= value < LIMIT)
