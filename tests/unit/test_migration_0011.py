"""Migration 0011 (instances: requested_host, force_host, shelved_image_id, shelved_at)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config
from tests.unit.migration_rows import insert_instance

NEW = {"requested_host", "force_host", "shelved_image_id", "shelved_at"}


def columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("instances")}


def test_host_and_shelve_columns_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0010")
    assert not NEW & columns(db)
    with db.engine.begin() as conn:
        insert_instance(conn)
    command.upgrade(cfg, "0011")
    assert NEW <= columns(db)
    with db.engine.begin() as conn:
        # A server made before the migration asked for no node and is not shelved.
        row = conn.execute(text("SELECT requested_host, force_host, shelved_image_id, "
                                "shelved_at FROM instances")).one()
        assert tuple(row) == (None, False, None, None)
        conn.execute(text("UPDATE instances SET requested_host = 'node1', force_host = true, "
                          "shelved_image_id = 'img', shelved_at = '2026-01-02 00:00:00'"))
    command.downgrade(cfg, "0010")
    assert not NEW & columns(db)
    with db.engine.begin() as conn:
        assert conn.execute(text("SELECT name FROM instances")).one() == ("vm",)
