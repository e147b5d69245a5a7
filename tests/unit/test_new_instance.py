"""A server's row and its create event written in one statement (servers/new_instance)
are those the ORM's flush writes; a first placement on PostgreSQL gives the row its node
in the claim's own statement (placement_one.claim_placing) and writes nothing else."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import inspect, null, select

from atwill.controller import node_scope
from atwill.controller.db.models import Instance, Node, UsageEvent
from atwill.controller.db.session import Database, migrate
from atwill.controller.servers import new_instance, placement
from atwill.core import usage_events as rules
from tests.unit.test_placement_fast import REQ, SPREAD, add_node

_SKIP = {"id", "instance_id", "created_at", "updated_at", "occurred_at"}


def _server(**kw: Any) -> Instance:
    values: dict[str, Any] = dict(id=str(uuid.uuid4()), name="vm", project_id="p",
                                  user_id="u", vcpus=1, memory_mb=512, disk_gb=1,
                                  flavor={"id": "f1", "name": "tiny"}, meta={"k": "v"},
                                  availability_zone=None, task_state="scheduling")
    return Instance(**(values | kw))


def _rows(db: Database, inst_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The server's row (each column's value and whether it is SQL NULL: JSON null is not)
    and its events."""
    table = Instance.__table__
    with db.session() as s:
        found = s.execute(select(*table.columns, *[c.is_(None).label(f"{c.name} is null")
                                                   for c in table.columns])
                          .where(table.c.id == inst_id)).one()
        row = {k: v for k, v in found._mapping.items() if k not in _SKIP}
        events = [{c.key: getattr(e, c.key) for c in inspect(UsageEvent).column_attrs
                   if c.key not in _SKIP}
                  for e in s.scalars(select(UsageEvent).where(UsageEvent.instance_id == inst_id)
                                     .order_by(UsageEvent.id))]
    return row, events


@pytest.mark.parametrize("explicit", [
    {}, {"fault": None, "description": None, "flavor": None, "task_state": None},
    {"launched_at": dt.datetime(2026, 1, 2, 3, 4, 5, 6), "tags": ["t", "ü"],
     "scheduler_hints": {"group": "g", "n": [1, 2.5, None]}, "user_data": "x\ny"}])
def test_the_rows_are_those_the_flush_writes(db: Database, explicit: dict[str, Any]) -> None:
    """A JSON column never set is SQL NULL, one set to None JSON null (it wrote JSON null
    for a never-set fault before). On PostgreSQL the first and last are written as one
    JSON record, the second (JSON null) with a parameter per column."""
    migrate(db.engine)
    with db.session() as s:
        by_orm = _server(**explicit)
        s.add(by_orm)
    with db.session() as s:
        by_core = new_instance.insert(s, _server(**explicit))
        assert inspect(by_core).persistent and not s.dirty and not s.new
        assert "Instance" in s.info[node_scope.TRACK].others
    assert _rows(db, by_core.id) == _rows(db, by_orm.id)
    assert _rows(db, by_core.id)[0]["fault is null"] is ("fault" not in explicit)
    assert _rows(db, by_core.id)[1][0]["event_type"] == rules.CREATE


def test_later_changes_flush_and_make_their_events(db: Database) -> None:
    migrate(db.engine)
    with db.session() as s:
        inst = new_instance.insert(s, _server())
        inst.vm_state = "active"  # in the same transaction: an UPDATE and its event
    with db.session() as s:
        assert s.get(Instance, inst.id).vm_state == "active"
    assert [e["event_type"] for e in _rows(db, inst.id)[1]] == [rules.CREATE, rules.STATE]


def test_a_rolled_back_insert_leaves_nothing(db: Database) -> None:
    """Nor a persistent object: it is transient again, as a flushed one would be."""
    migrate(db.engine)
    try:
        with db.session() as s:
            inst = new_instance.insert(s, _server())
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert inspect(inst).transient and inst.name == "vm"
    with db.session() as s:
        assert s.get(Instance, inst.id) is None
        assert s.scalar(select(UsageEvent.id)) is None


def test_a_first_placement_writes_the_node_with_the_claim(db: Database) -> None:
    migrate(db.engine)
    node = add_node(db, "a")
    with db.session() as s:
        inst = new_instance.insert(s, _server())
        host = placement.place(s, SPREAD, inst, REQ)
        assert (inst.node_id, inst.node_name) == (node, host.name)
        # On PostgreSQL nothing is left to flush; SQLite's general path: the ORM's UPDATE.
        assert (not s.dirty) is (db.engine.dialect.name == "postgresql")
        touched = s.info[node_scope.TRACK]
        assert "Instance" in touched.others
    row, events = _rows(db, inst.id)
    assert (row["node_id"], row["node_name"]) == (node, "a")
    assert [e["event_type"] for e in events] == [rules.CREATE]  # a first placement: no move


def test_a_first_placement_in_a_rolled_back_savepoint_is_forgotten(db: Database) -> None:
    """A server that existed before the savepoint (unshelve, a retried create) placed in it:
    the rollback takes its node back in memory too (it kept node a while its row and a's
    counters went back, so a later release freed counters it never took)."""
    migrate(db.engine)
    node = add_node(db, "a")
    with db.session() as s:
        inst = new_instance.insert(s, _server())
    with db.session() as s:
        inst = s.get(Instance, inst.id)
        savepoint = s.begin_nested()
        placement.place(s, SPREAD, inst, REQ)
        assert inst.node_id == node
        savepoint.rollback()
        assert (inst.node_id, inst.node_name) == (None, None)
        used = s.execute(select(Node.vcpus_used).where(Node.id == node)).scalar_one()
        assert used == 0
    assert _rows(db, inst.id)[0]["node_id"] is None


def test_a_server_that_had_a_node_moves_with_its_event(db: Database) -> None:
    """Not a first placement (a node name kept): the ORM writes it, with its move event."""
    migrate(db.engine)
    add_node(db, "b")
    with db.session() as s:
        inst = new_instance.insert(s, _server(node_name="gone"))
        placement.place(s, SPREAD, inst, REQ)
    row, events = _rows(db, inst.id)
    assert row["node_name"] == "b"
    assert [(e["event_type"], e["previous_node"]) for e in events] == [
        (rules.CREATE, None), (rules.MOVE, "gone")]


def test_the_record_statement_stays_in_psycopgs_query_cache() -> None:
    """psycopg converts a query once only when it has at most 50 parameters and 4,096
    bytes (psycopg._queries.MAX_CACHED_STATEMENT_*); a column per parameter had 65."""
    from psycopg import _queries
    from sqlalchemy.dialects import postgresql

    class _Conn:
        dialect = postgresql.psycopg.dialect()

    compiled = new_instance._both(_Conn, as_record=True).compile(  # type: ignore[arg-type]
        dialect=_Conn.dialect)
    assert len(compiled.params) <= _queries.MAX_CACHED_STATEMENT_PARAMS
    assert len(str(compiled).encode()) <= _queries.MAX_CACHED_STATEMENT_LENGTH
    assert new_instance._record({"a": null(), "b": None, "fault": None}) is None
    assert new_instance._record({"a": null(), "b": None}) == '{"b": null}'
