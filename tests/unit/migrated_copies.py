"""Each test a database of its own, migrated to head, copied from one migrated per module.

Migrating a new database runs every Alembic migration: ~1.5 s a test on PostgreSQL on the
loaded CI machine (the setup of most placement tests). A copy is the same schema and rows:
SQLite's file copied, or PostgreSQL's `CREATE DATABASE ... TEMPLATE` of the module's
migrated database (nothing may be connected to it then: its engine is disposed first).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.controller.db.session import Database, migrate
from tests.conftest import fresh_database_url, postgres_url


class MigratedTemplate:
    def __init__(self, url: str | None, directory: Path) -> None:
        self.url, self.directory = url, directory
        self.file = directory / "template.db"
        database = Database(url or f"sqlite:///{self.file}")
        try:
            migrate(database.engine)
        finally:
            database.dispose()

    def copy(self, tmp_path: Path) -> Iterator[Database]:
        """A fresh copy for one test, dropped (PostgreSQL) after it."""
        if self.url is None:
            target = tmp_path / "store.db"
            shutil.copyfile(self.file, target)
            database = Database(f"sqlite:///{target}")
            try:
                yield database
            finally:
                database.dispose()
            return
        import psycopg

        admin_url = postgres_url()
        assert admin_url
        template = self.url.rsplit("/", 1)[1]
        name = f"{template}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        database = Database(self.url.rsplit("/", 1)[0] + "/" + name)
        try:
            yield database
        finally:
            database.dispose()
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrated_template(engine: str, directory: Path) -> Iterator[MigratedTemplate]:
    """For a module-scoped fixture to yield from (skips without PostgreSQL, as db does)."""
    for url in fresh_database_url(engine):
        yield MigratedTemplate(url, directory)


def fixtures() -> tuple:
    """A module's `template` (migrated once, module-scoped, for its `engine`) and `db` (a
    copy of it per test) fixtures: `template, db = migrated_copies.fixtures()`."""

    @pytest.fixture(scope="module")
    def template(engine: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[MigratedTemplate]:
        yield from migrated_template(engine, tmp_path_factory.mktemp("template"))

    @pytest.fixture
    def db(template: MigratedTemplate, tmp_path: Path) -> Iterator[Database]:
        """A copy of the module's migrated database."""
        yield from template.copy(tmp_path)

    return template, db

