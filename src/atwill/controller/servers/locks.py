"""Serializing the few transactions that must see each other (quota checks, claims).

SQLite has one writer at a time, but a transaction that read before another committed
may decide on what it read (capacity left, a quota) after the other wrote. The sections
here therefore begin their transaction with BEGIN IMMEDIATE: SQLite's write lock is
taken before the first read and held to commit, which serializes them across every
thread and worker process sharing the file (waiting up to the busy timeout); no Python
lock is held. On PostgreSQL a transaction advisory lock per project serializes quota
checks across replicas, and claims rely on conditional updates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import text
from sqlalchemy.orm import Session

from ..db.session import immediate


@contextlib.contextmanager
def serialized(dialect: str) -> Iterator[None]:
    """Around a whole transaction: on SQLite the next session opened in it begins
    IMMEDIATE (db/session.py); a no-op elsewhere."""
    if dialect == "sqlite":
        with immediate():
            yield
    else:
        yield


def lock_project(session: Session, project_id: str) -> None:
    """On PostgreSQL, serialize quota decisions for one project until commit."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:p))"), {"p": project_id})
