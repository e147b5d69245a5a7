"""Migration 0004 (users' failed-login columns, projects' tags) on both engines."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config


def columns(db: Database, table: str) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns(table)}


def test_lockout_and_tags_columns_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0003")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO domains (id, name, description, enabled) "
                          "VALUES ('d', 'D', '', true)"))
        conn.execute(text("INSERT INTO users (id, name, domain_id, enabled, "
                          "password_changed_at) VALUES ('u', 'alice', 'd', true, "
                          "'2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO projects (id, name, domain_id, description, enabled) "
                          "VALUES ('p', 'proj', 'd', '', true)"))
    command.upgrade(cfg, "0004")
    assert {"failed_auth_count", "failed_auth_at"} <= columns(db, "users")
    assert "tags" in columns(db, "projects")
    with db.engine.begin() as conn:
        # Users from before the migration start unlocked with nothing counted.
        assert conn.execute(text("SELECT failed_auth_count, failed_auth_at FROM users"))\
            .one() == (0, None)
        assert conn.scalar(text("SELECT tags FROM projects")) in ("[]", [])
        # The count is incremented in the database, as the login path does.
        conn.execute(text("UPDATE users SET failed_auth_count = failed_auth_count + 1"))
        assert conn.scalar(text("SELECT failed_auth_count FROM users")) == 1
    command.downgrade(cfg, "0003")
    assert "failed_auth_count" not in columns(db, "users")
    assert "tags" not in columns(db, "projects")
    with db.engine.begin() as conn:
        assert conn.scalar(text("SELECT name FROM users WHERE id = 'u'")) == "alice"
        assert conn.scalar(text("SELECT name FROM projects WHERE id = 'p'")) == "proj"
