"""Which billing events a change to a server makes, and how an event is shown.

A server's lifecycle for billing: created, its state changed (active, stopped, shelved,
error…), resized (vCPUs, RAM or disk changed), moved to another node (evacuated,
migrated), deleted. Names follow Nova's notifications (compute.instance.*).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

CREATE = "compute.instance.create"
STATE = "compute.instance.state"
RESIZE = "compute.instance.resize"
MOVE = "compute.instance.move"
DELETE = "compute.instance.delete"
TYPES = (CREATE, STATE, RESIZE, MOVE, DELETE)


@dataclass(frozen=True)
class Change:
    """A server's billing-relevant fields before and after one write (old None: unchanged)."""

    old_state: str | None
    new_state: str
    old_node: str | None
    new_node: str | None
    node_changed: bool
    resized: bool
    deleted_now: bool


def event_types(change: Change) -> list[str]:
    """The events of one write to an existing server, in the order they are recorded."""
    if change.deleted_now:
        return [DELETE]  # the last event: its state change is part of the delete
    kinds = []
    if change.resized:
        kinds.append(RESIZE)
    # The first placement is part of the build; a later change of node is a move.
    if change.node_changed and change.old_node is not None and change.new_node is not None:
        kinds.append(MOVE)
    if change.old_state is not None and change.old_state != change.new_state:
        kinds.append(STATE)
    return kinds


def to_view(row: Any) -> dict[str, Any]:
    """An event as exported: JSON-ready, times in UTC with Z."""
    at: dt.datetime = row.occurred_at
    return {"id": row.id, "event_type": row.event_type, "occurred_at":
            at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "instance_id": row.instance_id,
            "instance_name": row.instance_name, "project_id": row.project_id,
            "user_id": row.user_id, "flavor": {"id": row.flavor_id, "name": row.flavor_name,
                                                "vcpus": row.vcpus, "ram": row.memory_mb,
                                                "disk": row.disk_gb},
            "state": row.state, "previous_state": row.previous_state,
            "node": row.node_name, "previous_node": row.previous_node}
