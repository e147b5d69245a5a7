"""A node's notice that its agent restarts on purpose, and what HA makes of it.

An agent stopped for an upgrade or a configuration change leaves its VMs running
under QEMU; silent for longer than the down threshold, it would be fenced and its
VMs evacuated. So before it stops, the agent tells the controller "back within N
seconds". The controller keeps the notice in the node's host_status JSON (the
first heartbeat of the restarted agent replaces that, so the notice ends there)
and counts the notice as a heartbeat at its deadline: until then the node is
RESTARTING (neither fenced nor evacuated, whatever its peers report); after it,
the usual thresholds and the lease run from the deadline.

The agent's lease keeper waits for the same deadline plus the lease, measured
from when the notice was sent, so the controller (counting from when it arrived)
never counts the node fenced by lease while its VMs may still run.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from .errors import BadRequest

KEY = "restart_notice"  # in nodes.host_status
# The node's health while its notice holds (beside ha_health's up, suspect and down):
# Nova's host_status shows it UNKNOWN, as a compute service that does not report.
RESTARTING = "restarting"
DEFAULT_SECONDS = 60.0
MAX_SECONDS = 600.0
MIN_SECONDS = 1.0
MAX_REASON = 255
# Each agent process names its run in its heartbeats and its notice: a heartbeat of the
# run that gave the notice (sent before it, delayed on the way) must not end it, or the
# controller would count the lease from that heartbeat while the stopped agent's lease
# keeper lets the VMs run until the notice's deadline plus the lease.
RUN_KEY = "agent_run"
_RUN_CHARS = frozenset("0123456789abcdef")
_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def bounded(seconds: float) -> float:
    """The agent's configured N within the bounds (0 or less: no notice at all)."""
    if not math.isfinite(seconds) or seconds <= 0:
        return 0.0
    return min(max(seconds, MIN_SECONDS), MAX_SECONDS)


def parse(body: Any) -> tuple[float, str]:
    """seconds and reason from a notice's body; BadRequest for anything else."""
    if not isinstance(body, Mapping):
        raise BadRequest("Malformed restart notice: a JSON object is required.")
    unknown = sorted(set(body) - {"seconds", "reason", RUN_KEY})
    if unknown:
        raise BadRequest(f"Unknown field(s) in the restart notice: {', '.join(unknown)}.")
    seconds = body.get("seconds")
    # The range first: math.isfinite overflows on a huge int (400 digits: a 500).
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) \
            or not MIN_SECONDS <= seconds <= MAX_SECONDS or not math.isfinite(seconds):
        raise BadRequest(f"Invalid input for field seconds: a number from {MIN_SECONDS:g} "
                         f"to {MAX_SECONDS:g} is required.")
    reason = body.get("reason", "agent restarting")
    if not isinstance(reason, str) or len(reason) > MAX_REASON or not reason.isprintable():
        raise BadRequest(f"Invalid input for field reason: printable text of at most "
                         f"{MAX_REASON} characters is required.")
    return float(seconds), reason.strip() or "agent restarting"


def run_of(body: Mapping[str, Any]) -> str | None:
    """The agent run named in a notice's body (optional: an older agent names none)."""
    run = body.get(RUN_KEY)
    if run is None:
        return None
    if not isinstance(run, str) or not 8 <= len(run) <= 64 or not set(run) <= _RUN_CHARS:
        raise BadRequest(f"Invalid input for field {RUN_KEY}: 8 to 64 lowercase hex digits "
                         "are required.")
    return run


def record(now: dt.datetime, seconds: float, reason: str,
           run: str | None = None) -> dict[str, Any]:
    """What host_status keeps: the deadline on the controller's clock, why, and which
    agent run gave it."""
    until = now + dt.timedelta(seconds=seconds)
    notice = {"given_at": now.strftime(_FORMAT), "until": until.strftime(_FORMAT),
              "seconds": seconds, "reason": reason}
    return notice if run is None else {**notice, RUN_KEY: run}


def after_heartbeat(previous: Mapping[str, Any] | None, report: Mapping[str, Any],
                    now: dt.datetime) -> dict[str, Any]:
    """The host_status a heartbeat leaves: its report, which ends a notice, except for a
    late heartbeat of the very run that gave a notice still holding: that one keeps it.
    A notice never comes from the report itself: only the notice route (its bounds and
    checks) gives one."""
    kept = {key: value for key, value in report.items() if key != KEY}
    notice = (previous or {}).get(KEY)
    if isinstance(notice, Mapping) and holds(previous, now) \
            and notice.get(RUN_KEY) is not None and notice.get(RUN_KEY) == kept.get(RUN_KEY):
        kept[KEY] = dict(notice)
    return kept


def deadline(host_status: Mapping[str, Any] | None) -> dt.datetime | None:
    """The notice's deadline (naive UTC), None without a readable notice."""
    notice = (host_status or {}).get(KEY)
    if not isinstance(notice, Mapping) or not isinstance(notice.get("until"), str):
        return None
    try:
        return dt.datetime.strptime(notice["until"], _FORMAT)
    except ValueError:
        return None


def holds(host_status: Mapping[str, Any] | None, now: dt.datetime) -> bool:
    """Whether a notice keeps the node from being judged now."""
    until = deadline(host_status)
    return until is not None and now < until


def heard_at(last_heartbeat: dt.datetime, host_status: Mapping[str, Any] | None
             ) -> dt.datetime:
    """When the node counts as last heard: its heartbeat, or the deadline of its notice
    (the notice promises a heartbeat by then; silence past it is counted from it)."""
    until = deadline(host_status)
    return last_heartbeat if until is None else max(last_heartbeat, until)


def describe(host_status: Mapping[str, Any] | None) -> str:
    """One line for logs and events: why the node is silent, until when."""
    notice = (host_status or {}).get(KEY) or {}
    return (f"agent restarting ({notice.get('reason', 'agent restarting')}), back by "
            f"{notice.get('until', '?')}")
