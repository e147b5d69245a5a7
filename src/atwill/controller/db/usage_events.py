"""The usage event log: one row per billing-relevant change of a server, appended only.

Rows are written by mapper events on Instance, in the same transaction as the change,
so no code path that writes a server can forget them and a rolled-back change leaves no
event. Their ids only grow, so an exporter follows the log by the last id it has.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, DateTime, Integer, String, event, inspect
from sqlalchemy.orm import Mapped, mapped_column

from ...core import usage_events as rules
from .base import Base, utcnow
from .servers import Instance

_SIZE = ("vcpus", "memory_mb", "disk_gb", "flavor")


class UsageEvent(Base):
    __tablename__ = "usage_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(String(64))
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    instance_name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    flavor_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    flavor_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32))
    previous_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    node_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    previous_node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


# One statement with its values bound per row: compiled once (values() built a new
# statement per event, a quarter of a placement's client CPU in `atwill bench scheduler`).
INSERT = UsageEvent.__table__.insert().inline()  # no RETURNING of the new id


def _row(inst: Instance, kind: str, previous_state: str | None = None,
         previous_node: str | None = None) -> dict[str, Any]:
    flavor = inst.flavor or {}
    return {"event_type": kind, "instance_id": inst.id, "instance_name": inst.name[:255],
            "project_id": inst.project_id, "user_id": inst.user_id,
            "flavor_id": flavor.get("id"), "flavor_name": flavor.get("name"),
            "vcpus": inst.vcpus, "memory_mb": inst.memory_mb, "disk_gb": inst.disk_gb,
            "state": "deleted" if inst.deleted else inst.vm_state,
            "previous_state": previous_state, "node_name": inst.node_name,
            "previous_node": previous_node, "occurred_at": utcnow()}


def _old(inst: Instance, attr: str) -> tuple[bool, Any]:
    """(changed, value before) of one attribute in the flush under way."""
    history = inspect(inst).attrs[attr].history
    if not history.has_changes():
        return False, None
    return True, history.deleted[0] if history.deleted else None


def created_row(inst: Instance) -> dict[str, Any]:
    """The create event of inst, as the after_insert hook writes it (servers/new_instance
    writes a new server and this row in one statement, without the ORM's INSERT)."""
    return _row(inst, rules.CREATE)


@event.listens_for(Instance, "after_insert")
def _created(_mapper: Any, connection: Connection, inst: Instance) -> None:
    connection.execute(INSERT, created_row(inst))


@event.listens_for(Instance, "after_update")
def _changed(_mapper: Any, connection: Connection, inst: Instance) -> None:
    state_changed, old_state = _old(inst, "vm_state")
    node_changed, old_node = _old(inst, "node_name")
    deleted_changed, _ = _old(inst, "deleted")
    change = rules.Change(
        old_state=old_state if state_changed else None, new_state=inst.vm_state,
        old_node=old_node, new_node=inst.node_name, node_changed=node_changed,
        resized=any(_old(inst, attr)[0] for attr in _SIZE[:3]),
        deleted_now=deleted_changed and bool(inst.deleted))
    for kind in rules.event_types(change):
        connection.execute(INSERT, _row(inst, kind, old_state if state_changed else None,
                                        old_node if node_changed else None))
