"""Migration 0015 (join_tokens.aggregates, the usage_events table)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config


def token_columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("join_tokens")}


def test_token_aggregates_and_usage_events_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0014")
    assert "aggregates" not in token_columns(db)
    assert "usage_events" not in inspect(db.engine).get_table_names()
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO join_tokens (id, token_hash, description, expires_at, "
                          "max_uses, uses, created_at) VALUES ('t', 'h', '', "
                          "'2026-01-01 00:00:00', 1, 0, '2026-01-01 00:00:00')"))
    command.upgrade(cfg, "0015")
    with db.engine.begin() as conn:
        # A token made before the migration carries no aggregate.
        assert conn.execute(text("SELECT aggregates FROM join_tokens")).scalar() in ([], "[]")
        conn.execute(text(
            "INSERT INTO usage_events (event_type, instance_id, instance_name, project_id, "
            "user_id, vcpus, memory_mb, disk_gb, state, occurred_at) VALUES ('compute."
            "instance.create', 'i', 'vm', 'p', 'u', 1, 64, 1, 'building', "
            "'2026-01-01 00:00:00')"))
        assert conn.execute(text("SELECT id FROM usage_events")).scalar() == 1
    command.downgrade(cfg, "0014")
    assert "aggregates" not in token_columns(db)
    assert "usage_events" not in inspect(db.engine).get_table_names()
    with db.engine.begin() as conn:
        assert conn.execute(text("SELECT id FROM join_tokens")).one() == ("t",)
