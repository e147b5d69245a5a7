"""Migration 0033 (a live migration's volume key, apart from its TLS key) on both engines:
a live migration under way keeps its destination's volume keys (its volume key is its TLS
key, the derivation before), an ended one or a resize gets none; the downgrade drops the
column only."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config

ROW = ("INSERT INTO migrations (uuid, instance_uuid, status, migration_type, tls_key, "
       "created_at) VALUES (:u, 'i', :s, :t, :k, '2026-01-01 00:00:00')")


def _columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("migrations")}


def test_a_migration_row_gets_a_volume_key(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0032")
    with db.engine.begin() as conn:
        for uuid, status, kind, key in (("running", "running", "live-migration", "ab" * 32),
                                        ("done", "completed", "live-migration", None),
                                        ("resize", "finished", "resize", None)):
            conn.execute(text(ROW), {"u": uuid, "s": status, "t": kind, "k": key})
    assert "volume_key" not in _columns(db)
    command.upgrade(cfg, "0033")
    with db.engine.begin() as conn:
        found = dict(conn.execute(text("SELECT uuid, volume_key FROM migrations")).all())
        assert found == {"running": "ab" * 32, "done": None, "resize": None}
        conn.execute(text("UPDATE migrations SET volume_key = :k"), {"k": "cd" * 32})
    command.downgrade(cfg, "0032")
    assert "volume_key" not in _columns(db)
    with db.engine.begin() as conn:
        assert sorted(conn.scalars(text("SELECT uuid FROM migrations"))) == [
            "done", "resize", "running"]
