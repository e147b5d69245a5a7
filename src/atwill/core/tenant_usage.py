"""Simple tenant usage as Nova reckons it: hours from launch to termination in a window.

An instance counts from launched_at (never-launched ones do not count) until
terminated_at, or the window's end while it lives; stop/start does not pause the
clock, as in Nova, since the instance keeps its resources on its node.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from .errors import BadRequest
from .text import shown


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
    launched_at: dt.datetime
    terminated_at: dt.datetime | None


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
    """Hours of rec's life inside [start, stop)."""
    begin = max(rec.launched_at, start)
    end = min(rec.terminated_at or stop, stop)
    return max((end - begin).total_seconds(), 0.0) / 3600.0


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
        total["total_local_gb_usage"] += usage["hours"] * rec.local_gb
        total["total_vcpus_usage"] += usage["hours"] * rec.vcpus
        total["total_memory_mb_usage"] += usage["hours"] * rec.memory_mb
        total["total_hours"] += usage["hours"]
        if detailed:
            total["server_usages"].append(usage)
    return list(out.values())
