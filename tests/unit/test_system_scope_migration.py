"""Migration 0005 (system role assignments) on both engines."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from atwill.controller.db.session import Database, alembic_config


def test_system_assignments_table_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0004")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO domains (id, name, description, enabled) "
                          "VALUES ('default', 'Default', '', true)"))
        for uid, name in (("ua", "admin"), ("ub", "bob")):
            conn.execute(text("INSERT INTO users (id, name, domain_id, enabled, "
                              "password_changed_at) VALUES (:i, :n, 'default', true, "
                              "'2026-01-01 00:00:00')"), {"i": uid, "n": name})
        for rid, name in (("ra", "admin"), ("rr", "reader")):
            conn.execute(text("INSERT INTO roles (id, name) VALUES (:i, :n)"),
                         {"i": rid, "n": name})
    command.upgrade(cfg, "0005")
    assert "system_role_assignments" in inspect(db.engine).get_table_names()
    with db.engine.begin() as conn:
        # An existing cloud's admin becomes admin on the system, as keystone-manage does.
        assert conn.execute(text("SELECT user_id, role_id FROM system_role_assignments"))\
            .all() == [("ua", "ra")]
        conn.execute(text("INSERT INTO system_role_assignments (user_id, role_id) "
                          "VALUES ('ub', 'rr')"))
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text("INSERT INTO system_role_assignments (user_id, role_id) "
                          "VALUES ('ub', 'rr')"))
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text("INSERT INTO system_role_assignments (user_id, role_id) "
                          "VALUES ('nobody', 'rr')"))
    command.downgrade(cfg, "0004")
    assert "system_role_assignments" not in inspect(db.engine).get_table_names()
    with db.engine.begin() as conn:
        assert conn.scalar(text("SELECT count(*) FROM users")) == 2
