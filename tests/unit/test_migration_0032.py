"""Migration 0032 (a node's cinder-volume frozen flag) on both engines: an existing node
keeps its row and starts not frozen; the downgrade drops the column only."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config
from tests.unit.test_migration_0030 import NODE


def _columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("nodes")}


def test_nodes_get_a_frozen_flag(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0031")
    with db.engine.begin() as conn:
        conn.execute(text(NODE), {"f": False})
    assert "volume_frozen" not in _columns(db)
    command.upgrade(cfg, "0032")
    with db.engine.begin() as conn:
        assert conn.execute(text("SELECT name, volume_frozen FROM nodes")).one() == \
            ("node1", False)
        conn.execute(text("UPDATE nodes SET volume_frozen = :t"), {"t": True})
    command.downgrade(cfg, "0031")
    assert "volume_frozen" not in _columns(db)
    with db.engine.begin() as conn:
        assert conn.scalar(text("SELECT name FROM nodes")) == "node1"
