"""The usage event log: which events a change makes, written with the change itself."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from atwill.controller.db.models import Instance, UsageEvent
from atwill.controller.db.session import Database, migrate
from atwill.core import usage_events as rules


def change(**kw: object) -> rules.Change:
    base = {"old_state": None, "new_state": "active", "old_node": None, "new_node": "n1",
            "node_changed": False, "resized": False, "deleted_now": False}
    return rules.Change(**(base | kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "kinds"), [
    ({}, []),
    ({"old_state": "building"}, [rules.STATE]),
    ({"old_state": "active"}, []),  # written again, not changed
    ({"node_changed": True}, []),  # the first placement belongs to the build
    ({"node_changed": True, "old_node": "n0"}, [rules.MOVE]),
    ({"resized": True, "old_state": "resized"}, [rules.RESIZE, rules.STATE]),
    ({"deleted_now": True, "old_state": "active", "resized": True}, [rules.DELETE]),
])
def test_event_types(kw: dict, kinds: list[str]) -> None:
    assert rules.event_types(change(**kw)) == kinds


def test_events_are_written_with_the_change_and_not_without_it(db: Database) -> None:
    migrate(db.engine)
    with db.session() as session:
        inst = Instance(name="vm", project_id="p", user_id="u", vcpus=1, memory_mb=64,
                        disk_gb=1, flavor={"id": "f1", "name": "tiny"})
        session.add(inst)
    with db.session() as session:
        inst = session.get(Instance, inst.id)
        inst.node_name, inst.vm_state = "n1", "active"
    with db.session() as session:
        inst = session.get(Instance, inst.id)
        inst.node_name = "n2"
        inst.vcpus, inst.flavor = 2, {"id": "f2", "name": "small"}
    with pytest.raises(RuntimeError), db.session() as session:
        session.get(Instance, inst.id).vm_state = "stopped"
        session.flush()
        raise RuntimeError("rolled back")
    with db.session() as session:
        inst = session.get(Instance, inst.id)
        inst.deleted, inst.vm_state = True, "deleted"
    with db.session() as session:
        rows = list(session.scalars(select(UsageEvent).order_by(UsageEvent.id)))
        got = [(r.event_type, r.previous_state, r.state, r.previous_node, r.node_name,
                r.vcpus, r.flavor_name) for r in rows]
    assert got == [
        (rules.CREATE, None, "building", None, None, 1, "tiny"),
        (rules.STATE, "building", "active", None, "n1", 1, "tiny"),
        (rules.RESIZE, None, "active", "n1", "n2", 2, "small"),
        (rules.MOVE, None, "active", "n1", "n2", 2, "small"),
        (rules.DELETE, "active", "deleted", None, "n2", 2, "small")]
