"""Fixtures shared by the unit tests that need a real database (SQLite and PostgreSQL), and
the process state every unit test gets back as it found it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from atwill.controller import revision_signal
from atwill.controller.db.base import Base
from atwill.controller.db.session import Database, migrate
from tests.conftest import fresh_database_url


@pytest.fixture(autouse=True)
def _umask_restored() -> Iterator[None]:
    """The agent's run() sets umask 077 for its process: a test that runs it must not
    change the modes of files every later test in the worker makes."""
    mask = os.umask(0o022)
    os.umask(mask)
    yield
    os.umask(mask)


@pytest.fixture
def db(engine: str, tmp_path: Path) -> Iterator[Database]:
    """A new, empty database (no schema) for each test, on each engine."""
    for url in fresh_database_url(engine):
        database = Database(url or f"sqlite:///{tmp_path / 'store.db'}")
        try:
            yield database
        finally:
            database.dispose()



@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    """A session on a new SQLite database with the whole schema (no migrations)."""
    db = Database(f"sqlite:///{tmp_path / 'schema.db'}")
    Base.metadata.create_all(db.engine)
    try:
        with db.session() as session:
            yield session
    finally:
        db.dispose()


def migrated_database(engine: str, directory: Path) -> Iterator[Database]:
    """A new database on the engine (SQLite: a file in directory) migrated to head, for a
    module-scoped fixture to yield from."""
    for url in fresh_database_url(engine):
        database = Database(url or f"sqlite:///{directory / 'store.db'}")
        migrate(database.engine)
        try:
            yield database
        finally:
            database.dispose()


@pytest.fixture
def woken() -> Iterator[list[set[str] | None]]:
    """What each notify of the long-poll signal concerned, in order."""
    seen: list[set[str] | None] = []
    revision_signal.changed.listeners.append(seen.append)
    try:
        yield seen
    finally:
        revision_signal.changed.listeners.remove(seen.append)
