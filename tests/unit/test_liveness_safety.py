"""The lean heartbeat flush's safety (cluster/liveness.py) on both engines: one refused beat
does not fail its batch, a row another transaction holds does not stall the others
(PostgreSQL), a change committed between the flush's read and its write is never written
over (SQLite), a beat is written only under the row's certificate, and no beat is answered
lean while the flush is behind."""

from __future__ import annotations

import datetime as dt
import threading
import time
from types import SimpleNamespace

import pytest
from sqlalchemy import event, text

from atwill.controller.cluster import liveness
from atwill.controller.cluster.liveness import Beat, Known, Liveness, digest
from atwill.controller.db.models import Node
from atwill.controller.db.session import Database, migrate
from atwill.core import restart_notice


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _fleet(db: Database) -> Liveness:
    migrate(db.engine)
    now = _now() - dt.timedelta(seconds=1)
    with db.session() as s:
        for index in range(3):
            s.add(Node(id=f"n{index}", name=f"node{index}", state="up", health="up",
                       last_heartbeat=now, host_status={}, cert_serial=f"s{index}"))
    live = Liveness(db)
    for index in range(3):
        live._known[f"n{index}"] = Known(b"c", f"s{index}", "", b"", 0, 0, True, 0.0)
    return live


def _heard(db: Database) -> dict[str, dt.datetime | None]:
    with db.session() as s:
        return {n.id: n.last_heartbeat for n in s.query(Node)}


def test_a_refused_beat_is_dropped_and_the_others_written(db) -> None:  # noqa: ANN001
    live = _fleet(db)
    at = _now()
    # too big for the column (PostgreSQL's 32-bit INTEGER; SQLite's 64-bit one)
    huge = 2**31 if db.engine.dialect.name == "postgresql" else 2**63
    live._buffer = {"n0": Beat(at, b"c", {}, {}, 1), "n1": Beat(at, b"c", {}, {}, huge),
                    "n2": Beat(at, b"c", {}, {}, 1)}
    assert live.flush() == 2
    heard = _heard(db)
    assert heard["n0"] == at and heard["n2"] == at and heard["n1"] != at
    assert not live._buffer  # not re-queued forever
    assert not live._known["n1"].healthy  # its next beat goes the full way (and is refused)
    assert live._known["n0"].healthy and live._known["n2"].healthy


def test_a_row_held_by_another_transaction_stalls_no_other_beat(db) -> None:  # noqa: ANN001
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite locks the whole database; row locks are PostgreSQL's")
    live = _fleet(db)
    at = _now()
    with db.engine.connect() as holder:
        tx = holder.begin()
        holder.execute(text("UPDATE nodes SET running_vms = running_vms WHERE id = 'n0'"))
        live._buffer = {f"n{i}": Beat(at, b"c", {}, {}, 0) for i in range(3)}
        started = time.monotonic()
        assert live.flush() == 2
        took = time.monotonic() - started
        heard = _heard(db)
        tx.rollback()
    assert took < 1.0, took
    assert heard["n1"] == at and heard["n2"] == at and heard["n0"] != at
    assert "n0" in live._buffer  # kept for the next flush
    assert not live._known["n0"].healthy  # and its next beat goes the full way
    assert live.flush() == 1 and _heard(db)["n0"] == at


def test_a_change_committed_before_the_write_is_never_written_over(db) -> None:  # noqa: ANN001
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's flush holds the rows it read (FOR UPDATE)")
    live = _fleet(db)
    other = Database(db.engine.url.render_as_string(hide_password=False))
    done: list[int] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def between(conn, cursor, statement, params, context, executemany) -> None:  # noqa: ANN001
        if statement.startswith("UPDATE nodes") and not done:
            done.append(1)
            with other.session() as s:  # the notice route and the HA monitor, meanwhile
                s.get(Node, "n0").host_status = {restart_notice.KEY: {"until": "2099-01-01"}}
                s.get(Node, "n1").fence_state = "fenced"
                s.get(Node, "n2").state = "down"

    try:
        at = _now()
        live._buffer = {f"n{i}": Beat(at, b"c", {}, {"uptime_s": 2}, 0) for i in range(3)}
        assert live.flush() == 0
    finally:
        event.remove(db.engine, "before_cursor_execute", between)
        other.dispose()
    with db.session() as s:
        n0, n1, n2 = (s.get(Node, f"n{i}") for i in range(3))
        assert restart_notice.KEY in n0.host_status and n0.last_heartbeat != at
        assert n1.fence_state == "fenced" and n1.last_heartbeat != at
        assert n2.state == "down" and n2.last_heartbeat != at
    assert not any(known.healthy for known in live._known.values())


def test_a_beat_is_written_only_under_the_rows_certificate(db) -> None:  # noqa: ANN001
    live = _fleet(db)
    at = _now()
    with db.session() as s:  # renewed meanwhile (another worker's full pass, a rejoin)
        s.get(Node, "n0").cert_serial = "renewed"
    live._buffer = {"n0": Beat(at, b"c", {}, {}, 0), "n1": Beat(at, b"c", {}, {}, 0)}
    assert live.flush() == 1
    assert _heard(db)["n0"] != at and _heard(db)["n1"] == at
    assert not live._known["n0"].healthy


def test_a_removed_node_is_forgotten_by_the_flush(db) -> None:  # noqa: ANN001
    live = _fleet(db)
    with db.session() as s:
        s.delete(s.get(Node, "n0"))
    live._buffer = {"n0": Beat(_now(), b"c", {}, {}, 0)}
    assert live.flush() == 0
    assert "n0" not in live._known and not live._buffer


def test_no_beat_is_lean_while_the_flush_is_behind(db) -> None:  # noqa: ANN001
    live = _fleet(db)
    live._known["n0"] = Known(b"c", "s0", "", digest({}, None), 0, 0, True, time.monotonic())
    body = SimpleNamespace(inventory=None, instances={}, volumes=None, overlay={},
                           running_vms=0)
    live._thread = threading.current_thread()  # a flush loop runs (not started here)
    assert live.lean("n0", b"c", "", body, {}) == 0
    live._flushed = time.monotonic() - liveness.STALENESS - 0.1  # its last success is old
    assert live.lean("n0", b"c", "", body, {}) is None
    live.flush()
    assert live.lean("n0", b"c", "", body, {}) == 0
