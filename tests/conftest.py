"""Fixtures shared by every tier."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.cloud import Cloud

ENGINES = ["sqlite", "postgres"]


def postgres_url() -> str | None:
    return os.environ.get("ATWILL_TEST_PG_URL")


def fresh_database_url(engine: str) -> Iterator[str | None]:
    """None for SQLite in the state directory; a new, later dropped, PostgreSQL database."""
    if engine == "sqlite":
        yield None
        return
    admin_url = postgres_url()
    if not admin_url:
        pytest.skip("ATWILL_TEST_PG_URL is not set (the test command starts PostgreSQL)")
    import psycopg

    name = f"atwill_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def database_url(engine: str) -> Iterator[str | None]:
    yield from fresh_database_url(engine)


@pytest.fixture(scope="session")
def cloud(database_url: str | None) -> Iterator[Cloud]:
    """A running controller for a whole session, per database engine."""
    instance = Cloud(database_url)
    try:
        instance.init()
        # Its test nodes fall silent between tests: HA must not evacuate their servers
        # under other tests (test_ha_evacuate has a controller of its own with it on).
        instance.configure(ha_auto_evacuate=False)
        instance.start()
        yield instance
    finally:
        instance.destroy()
