"""The PostgreSQL pool hands out live connections without a ping per checkout: a quiet
pooled connection is reused as is; one the server ended is replaced, not handed out."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import event, text

from atwill.controller.db.session import Database, _quiet
from tests.conftest import fresh_postgres


@pytest.fixture
def db() -> Iterator[Database]:
    yield from fresh_postgres()


def _backend(db: Database) -> int:
    with db.session() as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_quiet_connection_is_reused_without_a_ping(db: Database) -> None:
    pid = _backend(db)
    sent: list[str] = []
    event.listen(db.engine, "before_cursor_execute",
                 lambda _c, _cur, stmt, *_a: sent.append(stmt))
    assert _backend(db) == pid
    assert sent == ["SELECT pg_backend_pid()"]  # no SELECT 1 before it
    with db.engine.connect() as conn:
        assert _quiet(conn.connection.dbapi_connection)


def test_a_connection_the_server_ended_is_replaced(db: Database) -> None:
    pid = _backend(db)  # back in the pool, idle
    other = Database(db.url)
    try:
        with other.session() as session:
            assert session.execute(text("SELECT pg_terminate_backend(:pid)"),
                                   {"pid": pid}).scalar()
    finally:
        other.dispose()
    time.sleep(0.2)  # the server's goodbye reaches the socket
    assert _backend(db) != pid  # no error: the pool opened a new connection
