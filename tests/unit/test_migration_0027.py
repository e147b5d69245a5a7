"""Migration 0027 (the controllers registry) on both engines."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from atwill.controller.db.session import Database, alembic_config

ROW = ("INSERT INTO controllers (id, public_url, started_at, last_seen) VALUES "
       "(:id, :url, '2026-12-06 16:00:00', '2026-12-06 16:00:05')")


def test_controllers_table_with_one_row_per_url(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0026")
    assert "controllers" not in inspect(db.engine).get_table_names()
    command.upgrade(cfg, "0027")
    db.engine.dispose()  # SQLite: the pooled connection read the schema before
    indexes = {i["name"] for i in inspect(db.engine).get_indexes("controllers")}
    assert "ix_controllers_last_seen" in indexes
    with db.engine.begin() as conn:
        conn.execute(text(ROW), {"id": "c1", "url": "https://ctl1.example:8686"})
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text(ROW), {"id": "c2", "url": "https://ctl1.example:8686"})
    with db.engine.begin() as conn:
        assert conn.scalar(text("SELECT count(*) FROM controllers")) == 1
    command.downgrade(cfg, "0026")
    assert "controllers" not in inspect(db.engine).get_table_names()
