"""Migration 0018 (the migrations table of live migration)."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from atwill.controller.db.session import Database, alembic_config

ROW = ("INSERT INTO migrations (uuid, instance_uuid, status, migration_type, created_at) "
       "VALUES (:u, 'i', 'queued', 'live-migration', '2026-01-01 00:00:00')")


def test_migrations_table_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0015")
    assert "migrations" not in inspect(db.engine).get_table_names()
    command.upgrade(cfg, "0018")
    with db.engine.begin() as conn:
        conn.execute(text(ROW), {"u": "m1"})
        # Abort and force are off unless the API asked for them.
        row = conn.execute(text("SELECT id, force_complete, abort_requested, nbd_port "
                                "FROM migrations")).one()
        assert (row[0], bool(row[1]), bool(row[2]), row[3]) == (1, False, False, None)
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text(ROW), {"u": "m1"})  # the uuid is unique
    command.downgrade(cfg, "0015")
    assert "migrations" not in inspect(db.engine).get_table_names()
