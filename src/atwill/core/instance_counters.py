"""Per-instance counters a node reports with its heartbeat, read from QEMU and the kernel.

Each instance's report carries them under one key ("metrics"): a fixed set of numbers,
totals over the instance's disks and NICs (never one entry per device), so a heartbeat
grows by the same few bytes per instance however many disks or NICs a guest has.
Network bytes are the guest's view (what it received and sent), as libvirt reports
them: a tap's transmit is its guest's receive.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from .errors import BadRequest

REPORT_KEY = "metrics"
COUNTERS = ("cpu_seconds", "disk_read_bytes", "disk_write_bytes",
            "net_rx_bytes", "net_tx_bytes")
GAUGES = ("memory_rss_bytes",)
KEYS = (*COUNTERS, *GAUGES)
# Counters are 64-bit in the kernel and in QEMU; anything past that is not a reading.
LIMIT = 2.0 ** 64


def cpu_and_rss(stat: str, ticks_per_second: int, page_size: int) -> tuple[float, int]:
    """CPU seconds (user + system) and resident bytes from a /proc/<pid>/stat line."""
    # The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime, stime and rss are fields 14, 15 and 24.
    utime, stime, rss = int(fields[11]), int(fields[12]), int(fields[21])
    return (utime + stime) / ticks_per_second, max(rss, 0) * page_size


def tap_bytes(net_dev: str, taps: Collection[str]) -> tuple[int, int]:
    """Bytes the guest received and sent through its taps, from a /proc/<pid>/net/dev."""
    received = sent = 0
    for line in net_dev.splitlines()[2:]:  # two header lines
        name, colon, rest = line.partition(":")
        if colon and name.strip() in taps:
            columns = rest.split()
            # Eight receive columns, then eight transmit ones; bytes come first in each.
            received += int(columns[8])
            sent += int(columns[0])
    return received, sent


def block_bytes(blockstats: list[dict[str, Any]]) -> tuple[int, int]:
    """Bytes read and written by the guest's disks, from QMP's query-blockstats."""
    read = written = 0
    for device in blockstats:
        # Only the devices a guest has (an export's backend has no qdev); their backing
        # chains ("parent", "backing") would count the same I/O again, so stay on top.
        if not (device.get("qdev") or device.get("device")):
            continue
        stats = device.get("stats") or {}
        read += int(stats.get("rd_bytes", 0))
        written += int(stats.get("wr_bytes", 0))
    return read, written


def check_reports(instances: Mapping[str, Any]) -> None:
    """Refuse a heartbeat whose instance counters are not a small object of known numbers."""
    for uuid, entry in instances.items():
        if not isinstance(entry, dict) or REPORT_KEY not in entry:
            continue
        counters = entry[REPORT_KEY]
        if not isinstance(counters, dict):
            raise BadRequest(f"The metrics of instance {uuid[:64]!r} are not an object.")
        unknown = sorted(set(counters) - set(KEYS))
        if unknown:
            raise BadRequest(f"The metrics of instance {uuid[:64]!r} hold unknown keys "
                             f"({', '.join(k[:32] for k in unknown[:4])}); known: "
                             f"{', '.join(KEYS)}.")
        for key, value in counters.items():
            if not _reading(value):
                raise BadRequest(f"The metric {key} of instance {uuid[:64]!r} must be a "
                                 "number from 0 to 2^64.")


def _reading(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and 0 <= value < LIMIT)
