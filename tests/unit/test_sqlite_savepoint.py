"""A savepoint opened by a SQLite session that had only read (pysqlite had begun no
transaction): its RELEASE committed at once, so the outer rollback undid nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from atwill.controller.db.models import Node
from atwill.controller.db.session import Database, migrate


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    made = Database(f"sqlite:///{tmp_path / 'atwill.db'}")
    migrate(made.engine)
    yield made
    made.dispose()


def _nodes(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Node))


def test_a_released_savepoint_is_undone_by_the_outer_rollback(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        s.scalar(select(func.count()).select_from(Node))  # read only: no transaction yet
        with s.begin_nested():
            s.add(Node(name="half-made", vcpus=1, memory_mb=512, local_gb=1))
        raise RuntimeError("the request fails after its savepoint")
    assert _nodes(db) == 0


def test_a_released_savepoint_commits_with_its_transaction(db: Database) -> None:
    with db.session() as s:
        s.scalar(select(func.count()).select_from(Node))
        with s.begin_nested():
            s.add(Node(name="kept", vcpus=1, memory_mb=512, local_gb=1))
        with pytest.raises(RuntimeError), s.begin_nested():
            s.add(Node(name="dropped", vcpus=1, memory_mb=512, local_gb=1))
            s.flush()
            raise RuntimeError("this savepoint rolls back")
    with db.session() as s:
        assert s.scalars(select(Node.name)).all() == ["kept"]
