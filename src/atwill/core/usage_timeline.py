"""A server's billed life from its lifecycle events: from its first launch to its
deletion, at the size it had at each moment, not counting the time it held no node.

Nova reckons simple tenant usage from launched_at alone, at the server's present
flavor; since finishing a resize or an unshelve resets launched_at, Nova's figures lose
the hours before it and bill the old hours at the new size. Here each change the usage
event log recorded (vCPUs, RAM, disk; states) splits the life into spans:

- a stopped (or paused, suspended…) server is billed: it keeps its resources on its
  node, as in Nova;
- a shelved and offloaded server holds no node and is not billed until unshelved;
- a resize bills the old size until the size changes, the new one after.

A server without events (made before the log existed) is one span at its present size.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

UNBILLED = frozenset({"shelved_offloaded", "deleted"})
LAUNCHED = "active"


@dataclasses.dataclass(frozen=True)
class Step:
    """One usage event: when, the state after it and the size after it."""

    at: dt.datetime
    state: str
    vcpus: int
    memory_mb: int
    disk_gb: int


@dataclasses.dataclass(frozen=True)
class Span:
    """[start, stop) at one size; stop None while the server lives on."""

    start: dt.datetime
    stop: dt.datetime | None
    vcpus: int
    memory_mb: int
    local_gb: int


def first_launch(launched_at: dt.datetime, steps: Sequence[Step]) -> dt.datetime:
    """When the server first ran: launched_at, unless an unshelve (or a resize) moved it
    after the server's first step into ACTIVE."""
    active = next((s.at for s in steps if s.state == LAUNCHED), None)
    return launched_at if active is None else min(launched_at, active)


def spans(begin: dt.datetime, end: dt.datetime | None, steps: Sequence[Step],
          size: tuple[int, int, int], ephemeral_gb: int = 0) -> list[Span]:
    """The billed spans of a life [begin, end) (end None: still alive), steps in the
    order recorded; size (vcpus, memory_mb, disk_gb) is the server's present one, used
    when no step tells the size at begin. Local disk adds the present ephemeral disk."""
    before = [s for s in steps if s.at <= begin]
    start_from = before[-1] if before else (steps[0] if steps else None)
    current = size if start_from is None else (
        start_from.vcpus, start_from.memory_mb, start_from.disk_gb)
    billed = not (before and before[-1].state in UNBILLED)
    out: list[Span] = []
    since = begin
    for step in steps:
        if step.at <= begin or (end is not None and step.at >= end):
            continue
        now_billed = step.state not in UNBILLED
        now_size = (step.vcpus, step.memory_mb, step.disk_gb)
        if (now_billed, now_size) == (billed, current):
            continue
        if billed and step.at > since:
            out.append(_span(since, step.at, current, ephemeral_gb))
        since, billed, current = step.at, now_billed, now_size
    if billed and (end is None or end > since):
        out.append(_span(since, end, current, ephemeral_gb))
    return out


def _span(start: dt.datetime, stop: dt.datetime | None, size: tuple[int, int, int],
          ephemeral_gb: int) -> Span:
    return Span(start, stop, size[0], size[1], size[2] + ephemeral_gb)


def hours(span: Span, start: dt.datetime, stop: dt.datetime) -> float:
    """Hours of span inside the window [start, stop)."""
    begin = max(span.start, start)
    end = stop if span.stop is None else min(span.stop, stop)
    return max((end - begin).total_seconds(), 0.0) / 3600.0
