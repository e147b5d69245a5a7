"""Migration 0022 (each live migration's TLS key) on both engines."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config

ROW = ("INSERT INTO migrations (uuid, instance_uuid, status, migration_type, created_at) "
       "VALUES (:u, 'i', 'running', 'live-migration', '2026-01-01 00:00:00')")


def _columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("migrations")}


def test_a_migration_row_gets_a_tls_key_column(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0021")
    with db.engine.begin() as conn:
        conn.execute(text(ROW), {"u": "before"})
    assert "tls_key" not in _columns(db)
    command.upgrade(cfg, "0022")
    with db.engine.begin() as conn:
        # A migration recorded before has no key: its agents refuse to migrate it.
        assert conn.scalar(text("SELECT tls_key FROM migrations")) is None
        conn.execute(text("UPDATE migrations SET tls_key = :k"), {"k": "ab" * 32})
        assert conn.scalar(text("SELECT tls_key FROM migrations")) == "ab" * 32
    command.downgrade(cfg, "0021")
    assert "tls_key" not in _columns(db)
    with db.engine.begin() as conn:
        assert conn.scalar(text("SELECT uuid FROM migrations")) == "before"
