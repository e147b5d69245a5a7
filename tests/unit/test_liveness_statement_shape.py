"""A flush's statements have one shape whatever the number of beats it writes (issue 19,
controller CPU per beat): on PostgreSQL an IN list of another length was another
statement each flush (rendered by SQLAlchemy, converted by psycopg, parsed and planned by
the server, never prepared); `= ANY(:ids)` with one array parameter is one."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event

from atwill.controller.cluster.liveness import Beat, Known, Liveness
from atwill.controller.db.models import Node
from atwill.controller.db.session import Database, migrate

NODES = 7


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _fleet(db: Database) -> Liveness:
    migrate(db.engine)
    with db.session() as s:
        for index in range(NODES):
            s.add(Node(id=f"n{index}", name=f"node{index}", state="up", health="up",
                       last_heartbeat=_now() - dt.timedelta(seconds=5), host_status={},
                       cert_serial=f"s{index}"))
    return Liveness(db)


def _flush(db: Database, live: Liveness, count: int) -> tuple[list[str], dict[str, dt.datetime]]:
    """The statements of one flush of the first `count` nodes' beats (each node's check
    due, so the waiting-for query runs too), and the beats' times."""
    at = _now()
    for index in range(NODES):  # a fresh Known: its check is due (checked_at -inf)
        live._known[f"n{index}"] = Known(b"c", f"s{index}", "", b"", 0, 0, True, 0.0)
    live._buffer = {f"n{index}": Beat(at, b"c", {}, {"uptime_s": index}, 0)
                    for index in range(count)}
    statements: list[str] = []

    def seen(conn, cursor, statement, *rest) -> None:  # noqa: ANN001
        statements.append(statement)
    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        assert live.flush() == count
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    return statements, {f"n{index}": at for index in range(count)}


def test_a_flush_runs_the_same_statements_whatever_its_size(db) -> None:  # noqa: ANN001
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no arrays: its flush keeps IN lists")
    live = _fleet(db)
    few, _ = _flush(db, live, 2)
    many, written = _flush(db, live, 5)
    assert len(few) >= 4  # lock timeout, read, write, read back, the check
    assert few == many
    with db.session() as s:  # and it wrote them
        heard = {n.id: n.last_heartbeat for n in s.query(Node)}
    assert all(heard[node_id] == at for node_id, at in written.items())


def test_a_flush_of_one_and_of_many_write_on_both_engines(db) -> None:  # noqa: ANN001
    live = _fleet(db)
    for count in (1, NODES):
        _, written = _flush(db, live, count)
        with db.session() as s:
            heard = {n.id: n.last_heartbeat for n in s.query(Node)}
        assert all(heard[node_id] == at for node_id, at in written.items())
        assert all(live._known[node_id].healthy for node_id in written)
