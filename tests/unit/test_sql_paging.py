"""Keyset pages in SQL (controller/sqlpage.py) on an in-memory SQLite table."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, String, create_engine, event, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from atwill.controller import sqlpage
from atwill.controller.sqlpage import Key


class _Base(DeclarativeBase):
    pass


class Thing(_Base):
    __tablename__ = "things"
    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(8), nullable=True)
    size: Mapped[int] = mapped_column(Integer)


@pytest.fixture(scope="module")
def session():
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all(Thing(id=f"t{i:03d}", name=None if i % 7 == 0 else f"n{i % 5}", size=i % 3)
                  for i in range(250))
        s.commit()
        yield s
    engine.dispose()


KEYS = [Key(func.coalesce(Thing.name, "")), Key(Thing.size, desc=True), Key(Thing.id)]


def _all_pages(session, limit, accept=None):
    seen, start, reads = [], None, 0
    while True:
        chunk, more = sqlpage.rows(session, select(Thing), KEYS, limit, start, accept)
        seen += chunk
        reads += 1
        if not more:
            return seen, reads
        start = sqlpage.marker_values(session, select(Thing), KEYS,
                                              Thing.id == chunk[-1].id)


def test_pages_visit_every_row_once_in_order(session):
    seen, reads = _all_pages(session, 25)
    expected = sorted(session.scalars(select(Thing)),
                      key=lambda t: (t.name or "", -t.size, t.id))
    assert [t.id for t in seen] == [t.id for t in expected]
    assert reads == 10


def test_last_page_is_exact_and_says_no_more(session):
    chunk, more = sqlpage.rows(session, select(Thing), KEYS, 250)
    assert len(chunk) == 250 and more is False
    chunk, more = sqlpage.rows(session, select(Thing), KEYS, 249)
    assert len(chunk) == 249 and more is True


def test_python_filter_reads_in_batches_and_fills_the_page(session):
    def even(t):
        return int(t.id[1:]) % 2 == 0
    seen, _ = _all_pages(session, 30, even)
    assert len(seen) == 125 and all(even(t) for t in seen)
    assert len({t.id for t in seen}) == 125


def test_one_page_reads_only_what_it_needs(session):
    statements = []
    engine = session.get_bind()

    def seen(conn, cursor, statement, *rest):
        statements.append(statement)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        chunk, more = sqlpage.rows(session, select(Thing), KEYS, 10)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(chunk) == 10 and more
    assert len(statements) == 1 and "LIMIT" in statements[0]


def test_unknown_marker_has_no_values(session):
    assert sqlpage.marker_values(session, select(Thing), KEYS, Thing.id == "nope") is None
    scoped = select(Thing).where(Thing.size == 0)
    assert sqlpage.marker_values(session, scoped, KEYS, Thing.id == "t001") is None
    assert sqlpage.marker_values(session, scoped, KEYS, Thing.id == "t003") == ["n3", 0, "t003"]


def test_repeated_sort_keys_are_dropped_and_too_many_refused(session):
    """Review finding: `sort=id,id,…` (300 keys) built megabytes of SQL for one page."""
    from atwill.core.errors import BadRequest

    repeated = [*KEYS, Key(Thing.id), Key(func.coalesce(Thing.name, "")), Key(Thing.size)]
    assert len(sqlpage.distinct(repeated)) == 3
    start = sqlpage.marker_values(session, select(Thing), repeated, Thing.id == "t010")
    assert len(start) == 3
    chunk, _ = sqlpage.rows(session, select(Thing), repeated, 5, start)
    assert chunk == sqlpage.rows(session, select(Thing), KEYS, 5, start)[0]
    with pytest.raises(BadRequest, match="Too many sort keys: 33 given"):
        sqlpage.rows(session, select(Thing), [Key(Thing.id)] * 33, 5)
