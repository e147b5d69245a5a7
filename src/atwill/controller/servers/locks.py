"""Serializing the few transactions that must see each other (quota checks, claims).

SQLite has one writer at a time, but a transaction that read before another
committed cannot write afterwards ("database is locked"), so in the single
SQLite process these sections take a process lock. On PostgreSQL a transaction
advisory lock per project serializes quota checks across replicas, and claims
rely on conditional updates.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from sqlalchemy import text
from sqlalchemy.orm import Session

_sqlite_lock = threading.RLock()


@contextlib.contextmanager
def serialized(dialect: str) -> Iterator[None]:
    """Hold around a whole transaction on SQLite; a no-op elsewhere."""
    if dialect == "sqlite":
        with _sqlite_lock:
            yield
    else:
        yield


def lock_project(session: Session, project_id: str) -> None:
    """On PostgreSQL, serialize quota decisions for one project until commit."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:p))"), {"p": project_id})
