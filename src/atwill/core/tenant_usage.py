"""Simple tenant usage: hours from launch to termination in a window, as Nova's shapes.

An instance counts from its first launch (never-launched ones do not count) until
terminated_at, or the window's end while it lives; stop/start does not pause the
clock, as in Nova, since the instance keeps its resources on its node. Given its spans
(usage_timeline.py: from the lifecycle events) the figures follow each resize and skip
the time it was shelved and offloaded, where Nova's would not.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from .errors import BadRequest
from .text import shown
from .usage_timeline import Span
from .usage_timeline import hours as span_hours


@dataclasses.dataclass(frozen=True)
class Record:
    instance_id: str
    name: str
    project_id: str
    flavor: str
    vcpus: int
    memory_mb: int
    local_gb: int
    state: str
    launched_at: dt.datetime  # the first launch
    terminated_at: dt.datetime | None
    spans: tuple[Span, ...] | None = None  # None: launch to termination at this size

    def billed(self) -> tuple[Span, ...]:
        if self.spans is not None:
            return self.spans
        return (Span(self.launched_at, self.terminated_at, self.vcpus, self.memory_mb,
                     self.local_gb),)


def parse_time(value: str | None, now: dt.datetime) -> dt.datetime:
    """A query's start or end (ISO 8601, naive means UTC); absent means now, as Nova."""
    if value is None:
        return now
    try:
        parsed = dt.datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        raise BadRequest(f"Invalid datetime string: {shown(value)} is not an ISO 8601 "
                         "time such as 2026-01-31T12:00:00.") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def window(start: dt.datetime, stop: dt.datetime) -> None:
    if not start < stop:
        raise BadRequest("Invalid start time. The start time cannot occur after the end time.")


def hours(rec: Record, start: dt.datetime, stop: dt.datetime) -> float:
    """Billed hours of rec's life inside [start, stop)."""
    return sum(span_hours(span, start, stop) for span in rec.billed())


def resource_hours(rec: Record, start: dt.datetime, stop: dt.datetime
                   ) -> tuple[float, float, float]:
    """(vCPU, RAM MB, local GB) hours of rec inside [start, stop), each span at its size."""
    out = [0.0, 0.0, 0.0]
    for span in rec.billed():
        part = span_hours(span, start, stop)
        out[0] += part * span.vcpus
        out[1] += part * span.memory_mb
        out[2] += part * span.local_gb
    return out[0], out[1], out[2]


def stamp(value: dt.datetime | None) -> str | None:
    # Nova shows these times as Python's isoformat of naive UTC datetimes.
    return value.isoformat() if value else None


def server_usage(rec: Record, start: dt.datetime, stop: dt.datetime,
                 now: dt.datetime) -> dict[str, Any]:
    state = "terminated" if rec.terminated_at else rec.state
    uptime = (rec.terminated_at or now) - rec.launched_at
    return {"instance_id": rec.instance_id, "name": rec.name, "tenant_id": rec.project_id,
            "flavor": rec.flavor, "hours": hours(rec, start, stop), "vcpus": rec.vcpus,
            "memory_mb": rec.memory_mb, "local_gb": rec.local_gb, "state": state,
            "started_at": stamp(rec.launched_at), "ended_at": stamp(rec.terminated_at),
            "uptime": int(uptime.total_seconds())}


def by_project(records: Iterable[Record], start: dt.datetime, stop: dt.datetime,
               now: dt.datetime, detailed: bool) -> list[dict[str, Any]]:
    """One usage summary per project, in the order projects first appear in records."""
    out: dict[str, dict[str, Any]] = {}
    for rec in records:
        usage = server_usage(rec, start, stop, now)
        total = out.setdefault(rec.project_id, {
            "tenant_id": rec.project_id, "total_local_gb_usage": 0.0,
            "total_vcpus_usage": 0.0, "total_memory_mb_usage": 0.0, "total_hours": 0.0,
            "start": stamp(start), "stop": stamp(stop),
            **({"server_usages": []} if detailed else {})})
        vcpu_hours, ram_hours, disk_hours = resource_hours(rec, start, stop)
        total["total_local_gb_usage"] += disk_hours
        total["total_vcpus_usage"] += vcpu_hours
        total["total_memory_mb_usage"] += ram_hours
        total["total_hours"] += usage["hours"]
        if detailed:
            total["server_usages"].append(usage)
    return list(out.values())
