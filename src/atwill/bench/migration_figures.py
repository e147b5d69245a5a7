"""The migration benchmark's pure pieces: QEMU's figures from an agent's log, the longest
gap in a polling client's replies, and ratios to the migration done by hand."""

from __future__ import annotations

import re
from typing import Any

# What the source's agent logs once QEMU says "completed" (hypervisor/migration.py).
_COMPLETED = re.compile(r"migration completed: downtime (\d+) ms, total (\d+) ms, "
                        r"(\d+) bytes of memory")
# `ping -D -n`: "[1733490000.123456] 64 bytes from 10.0.0.5: icmp_seq=7 ttl=64 time=0.4 ms"
_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+)")


def qemu_completed(log: str) -> list[dict[str, int]]:
    """Every completed migration's figures in an agent's log, oldest first."""
    return [{"downtime_ms": int(d), "total_ms": int(t), "bytes": int(b)}
            for d, t, b in _COMPLETED.findall(log)]


def replies(ping_output: str) -> list[tuple[float, int]]:
    """(time in s, icmp_seq) of each echo reply in `ping -D -n` output."""
    out = []
    for line in ping_output.splitlines():
        match = _REPLY.match(line.strip())
        if match:
            out.append((float(match.group(1)), int(match.group(2))))
    return out


def longest_gap_ms(seen: list[tuple[float, int]]) -> float | None:
    """The longest time between two consecutive replies (None with fewer than two): how
    long the guest did not answer, give or take one polling interval."""
    times = sorted(t for t, _ in seen)
    if len(times) < 2:
        return None
    return max(b - a for a, b in zip(times, times[1:], strict=False)) * 1000


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline, or None when either is missing or the baseline is not positive."""
    if value is None or baseline is None or baseline <= 0:
        return None
    return value / baseline


def with_ratios(run: dict[str, Any], hand: dict[str, Any]) -> dict[str, Any]:
    """A migration's figures with their ratios to the one done by hand."""
    return dict(run, downtime_ratio=ratio(run.get("downtime_ms"), hand.get("downtime_ms")),
                total_ratio=ratio(run.get("total_ms"), hand.get("total_ms")),
                bytes_ratio=ratio(run.get("bytes"), hand.get("bytes")),
                api_total_ratio=ratio(run.get("api_s"), _seconds(hand.get("total_ms"))))


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def _fmt(value: Any, spec: str) -> str:
    if value is None:  # a dash in the column's width, so the next columns stay aligned
        width = spec[:len(spec) - len(spec.lstrip("0123456789"))]
        return format("-", ">" + width)
    return format(value, spec)


def table(rows: dict[str, dict[str, Any]]) -> str:
    """One line per migration: QEMU's downtime, the client's gap, totals, bytes, ratios."""
    head = (f"{'case':<16}{'down ms':>9}{'gap ms':>9}{'total ms':>10}{'API s':>8}"
            f"{'MiB':>8}{'down x':>8}{'total x':>9}{'API x':>8}")
    lines = [head]
    for name, r in rows.items():
        lines.append(f"{name:<16}{_fmt(r.get('downtime_ms'), '9d')}"
                     f"{_fmt(r.get('gap_ms'), '9.0f')}{_fmt(r.get('total_ms'), '10d')}"
                     f"{_fmt(r.get('api_s'), '8.2f')}"
                     f"{_fmt(r.get('bytes') and r['bytes'] / 2**20, '8.1f')}"
                     f"{_fmt(r.get('downtime_ratio'), '8.2f')}"
                     f"{_fmt(r.get('total_ratio'), '9.2f')}"
                     f"{_fmt(r.get('api_total_ratio'), '8.2f')}")
    return "\n".join(lines)
