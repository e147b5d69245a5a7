"""On PostgreSQL a flush writes its beats in one statement reading them from one JSON
array (liveness.WRITE_ALL, issue 19: an executemany cost SQLAlchemy's and psycopg's work
per row); it writes exactly what the statement per beat (liveness.WRITE, SQLite's, and
PostgreSQL's before) writes, under the same conditions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import event, select, text

from atwill.controller.cluster import liveness
from atwill.controller.db.models import Node
from atwill.controller.db.session import Database, migrate

WAS = dt.datetime(2026, 12, 8, 0, 0, 0, 123456)
AT = dt.datetime(2026, 12, 8, 0, 0, 1, 654321)
WHOLE = dt.datetime(2026, 12, 8, 0, 0, 2)  # isoformat() without microseconds
COLUMNS = ("id", "last_heartbeat", "heartbeat_gap_peak", "host_status", "overlay_status",
           "running_vms", "beat_epoch", "beat_seq")


def _nodes(db: Database, prefix: str) -> None:
    with db.session() as s:
        for index in range(6):
            s.add(Node(id=f"{prefix}{index}", name=f"{prefix}node{index}", state="up",
                       health="up", last_heartbeat=WAS, host_status={},
                       cert_serial=f"{prefix}s{index}",
                       beat_epoch=5 if index == 5 else None, beat_seq=9 if index == 5 else None))
        s.get(Node, f"{prefix}3").fence_state = "pending"  # not written: fenced


def _rows(prefix: str) -> list[dict[str, Any]]:
    def row(index: int, **more: Any) -> dict[str, Any]:
        return {"b_id": f"{prefix}{index}", "b_at": AT, "b_was": WAS,
                "b_serial": f"{prefix}s{index}", "b_peak": 1.0 / 3,
                "b_host": {"uptime_s": index, "name": "h\u00e9\u4e2d", "agent_heard": True,
                           "loadavg": [0.5, 1e-7, 12345678.9]},
                "b_overlay": {"wg0": {"peers": [1, 2]}, "ok": None}, "b_vms": index, **more}
    return [row(0), row(1, b_at=WHOLE),
            row(2, b_serial="another"),  # not written: another certificate
            row(3),
            row(4, b_epoch=1, b_seq=2),  # ordered, none stored: written
            row(5, b_epoch=5, b_seq=8)]  # ordered, older than the stored (5, 9): not


def _stored(db: Database, prefix: str) -> list[tuple]:
    with db.engine.connect() as c:
        rows = c.execute(select(*(Node.__table__.c[name] for name in COLUMNS),
                                text("host_status::text"), text("overlay_status::text"))
                         .where(Node.id.like(f"{prefix}%")).order_by(Node.id)).all()
    return [(row[0][len(prefix):], *row[1:]) for row in rows]


def test_one_statement_writes_what_a_statement_per_beat_writes(db) -> None:  # noqa: ANN001
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes with a statement per beat (no JSONB here)")
    migrate(db.engine)
    _nodes(db, "a")
    _nodes(db, "b")
    with db.session() as session:  # the statement per beat
        plain = [r for r in _rows("a") if "b_epoch" not in r]
        ordered = [r for r in _rows("a") if "b_epoch" in r]
        session.connection().execute(liveness.WRITE, plain)
        session.connection().execute(liveness.WRITE_ORDERED, ordered)
    statements: list[str] = []

    def seen(conn, cursor, statement, *rest) -> None:  # noqa: ANN001
        statements.append(statement)
    with db.session() as session:  # one statement for the plain beats, one for the ordered
        event.listen(db.engine, "before_cursor_execute", seen)
        try:
            liveness._write_rows(session, _rows("b"))
        finally:
            event.remove(db.engine, "before_cursor_execute", seen)
    assert len(statements) == 2 and all("ANY" in s for s in statements)
    before, after = _stored(db, "a"), _stored(db, "b")
    assert after == before
    written = {row[0] for row in after if row[1] != WAS}
    assert written == {"0", "1", "4"}
    assert dict((row[0], row[1]) for row in after)["1"] == WHOLE


def test_a_peak_json_cannot_carry_is_written_per_beat(db) -> None:  # noqa: ANN001
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes with a statement per beat")
    migrate(db.engine)
    _nodes(db, "c")
    rows = [dict(_rows("c")[0], b_peak=float("inf"))]
    with db.session() as session:
        liveness._write_rows(session, rows)
    assert dict((row[0], row[2]) for row in _stored(db, "c"))["0"] == float("inf")
