"""Migration 0024 (a cold migration's flavors and finish time) on both engines."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config

ROW = ("INSERT INTO migrations (uuid, instance_uuid, status, migration_type, created_at) "
       "VALUES (:u, 'i', 'completed', 'live-migration', '2026-01-01 00:00:00')")
NEW = {"old_flavor", "new_flavor", "finished_at"}


def _columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("migrations")}


def test_migrations_get_flavors_and_finish_time(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0023")
    with db.engine.begin() as conn:
        conn.execute(text(ROW), {"u": "before"})
    assert not NEW & _columns(db)
    command.upgrade(cfg, "0024")
    with db.engine.begin() as conn:
        assert conn.execute(text("SELECT old_flavor, new_flavor, finished_at FROM "
                                 "migrations")).one() == (None, None, None)
        conn.execute(text("UPDATE migrations SET old_flavor = :f, finished_at = :t"),
                     {"f": '{"id": "1"}', "t": "2026-01-02 00:00:00"})
        assert conn.scalar(text("SELECT finished_at FROM migrations")) is not None
    command.downgrade(cfg, "0023")
    assert not NEW & _columns(db)
    with db.engine.begin() as conn:
        assert conn.scalar(text("SELECT uuid FROM migrations")) == "before"
