"""Migration 0006 (instances: locked_by, locked_reason, tags) on both engines."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config
from tests.unit.migration_rows import insert_instance

NEW = {"locked_by", "locked_reason", "tags"}


def columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("instances")}


def test_lock_and_tag_columns_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0005")
    assert not NEW & columns(db)
    with db.engine.begin() as conn:
        insert_instance(conn, locked=True)
    command.upgrade(cfg, "0006")
    assert NEW <= columns(db)
    with db.engine.begin() as conn:
        # A server locked before the migration has no recorded side, no reason, no tags.
        row = conn.execute(text("SELECT locked, locked_by, locked_reason, tags "
                                "FROM instances")).one()
        assert tuple(row[:3]) == (True, None, None) and row[3] in ("[]", [])
        conn.execute(text("UPDATE instances SET locked_by = 'admin', "
                          "locked_reason = 'maintenance'"))
    command.downgrade(cfg, "0005")
    assert not NEW & columns(db)
    with db.engine.begin() as conn:
        assert conn.execute(text("SELECT name, locked FROM instances")).one() == ("vm", True)
