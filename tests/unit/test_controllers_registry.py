"""controller/controllers.py on both engines: registration, the live window, removal, and
one revision bump for every node each time the list changes (none when it does not)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from atwill.config import Settings
from atwill.controller import controllers
from atwill.controller.db.base import Base
from atwill.controller.db.models import ClusterRevision, ControllerRecord, NodeRevision
from atwill.controller.db.session import Database
from atwill.controller.revision import node_revision

T0 = dt.datetime(2026, 12, 6, 16, 0, 0)
A, B = "https://a.example:8686", "https://b.example:8686"


@pytest.fixture
def registry(db: Database) -> Iterator[Database]:
    tables = [m.__table__ for m in (ControllerRecord, ClusterRevision, NodeRevision)]
    Base.metadata.create_all(db.engine, tables=tables)
    yield db


def _everyone_at(db: Database) -> int:
    with db.session() as session:
        return node_revision(session, "any-node")


def _live(db: Database, now: dt.datetime) -> list[str]:
    with db.session() as session:
        return sorted(controllers.live(session, now))


def test_a_controller_is_listed_while_it_refreshes(registry: Database) -> None:
    db = registry
    with db.session() as session:
        assert controllers.register(session, A, T0)
    first = _everyone_at(db)
    assert first == 0  # alone, a controller already listed itself: no node is woken
    later = T0 + dt.timedelta(seconds=25)
    with db.session() as session:
        assert not controllers.register(session, A, later)
        assert controllers.register(session, B, later)
    assert _everyone_at(db) > first  # every node is told of the second controller
    assert _live(db, T0 + dt.timedelta(seconds=40)) == [A, B]
    refreshed = _everyone_at(db)
    with db.session() as session:
        assert not controllers.register(session, B, T0 + dt.timedelta(seconds=41))
        assert controllers.sweep(session, T0 + dt.timedelta(seconds=41)) == 0
    assert _everyone_at(db) == refreshed  # a refresh that changes nothing wakes no node


def test_a_controller_that_stops_leaves_the_list_after_the_window(registry: Database) -> None:
    db = registry
    with db.session() as session:
        controllers.register(session, A, T0)
        controllers.register(session, B, T0 + dt.timedelta(seconds=20))
    after = T0 + controllers.WINDOW + dt.timedelta(seconds=1)
    assert _live(db, after) == [B]  # listed no more before any sweep
    before = _everyone_at(db)
    with db.session() as session:
        assert controllers.sweep(session, after) == 1
    assert _everyone_at(db) > before
    with db.session() as session:
        assert [r.public_url for r in session.query(ControllerRecord)] == [B]
        # Back after the window: listed again, from a new start.
        assert controllers.register(session, B, after + controllers.WINDOW * 2)
        row = session.query(ControllerRecord).one()
        assert row.started_at == after + controllers.WINDOW * 2
        assert controllers.deregister(session, B)
        assert not controllers.deregister(session, B)


def test_the_list_agents_get(registry: Database) -> None:
    db = registry
    with db.session() as session:
        controllers.register(session, B)
        controllers.register(session, A)
        controllers.register(session, "http://plain.example:8686")
        own = Settings(public_host="a.example", port=8686)
        assert controllers.listed(session, own) == [A, B]
        seeded = Settings(public_host="a.example", port=8686,
                          controller_urls="https://lb.example:443, https://b.example:8686")
        assert controllers.listed(session, seeded) == ["https://lb.example:443", B, A]
