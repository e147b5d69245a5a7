"""Migration 0014 (dashboard sessions) on both engines."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from atwill.controller.db.session import Database, alembic_config

SESSION = ("INSERT INTO dashboard_sessions (id, token, csrf, user_id, user_name, domain, "
           "project_id, project_name, roles, expires_at, created_at) VALUES ('{id}', 'tok', "
           "'c', 'u1', 'admin', 'Default', NULL, NULL, 'admin', '2026-01-01 01:00:00', "
           "'2026-01-01 00:00:00')")


def test_dashboard_sessions_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0013")
    assert "dashboard_sessions" not in inspect(db.engine).get_table_names()
    command.upgrade(cfg, "0014")
    with db.engine.begin() as conn:
        conn.execute(text(SESSION.format(id="a" * 64)))
        assert conn.scalar(text("SELECT user_name FROM dashboard_sessions")) == "admin"
    # The id is the key: one row per cookie.
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text(SESSION.format(id="a" * 64)))
    command.downgrade(cfg, "0013")
    tables = inspect(db.engine).get_table_names()
    assert "dashboard_sessions" not in tables and "nodes" in tables
