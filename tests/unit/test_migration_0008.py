"""Migration 0008 (host aggregates, their hosts and metadata) on both engines."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from atwill.controller.db.session import Database, alembic_config

NOW = "'2026-01-01 00:00:00'"
TABLES = {"aggregates", "aggregate_hosts", "aggregate_metadata"}


def test_aggregates_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0007")
    command.upgrade(cfg, "0008")
    assert TABLES <= set(inspect(db.engine).get_table_names())
    with db.engine.begin() as conn:
        conn.execute(text(f"INSERT INTO aggregates (uuid, name, created_at) VALUES "
                          f"('u1', 'gpu', {NOW})"))
        agg = conn.scalar(text("SELECT id FROM aggregates WHERE name = 'gpu'"))
        conn.execute(text(f"INSERT INTO aggregate_hosts (aggregate_id, host) VALUES ({agg}, 'n1')"))
        conn.execute(text(f"INSERT INTO aggregate_metadata (aggregate_id, key, value) VALUES "
                          f"({agg}, 'availability_zone', 'az1')"))
    for statement in (f"INSERT INTO aggregates (uuid, name, created_at) VALUES ('u2', 'gpu', "
                      f"{NOW})", f"INSERT INTO aggregate_hosts (aggregate_id, host) VALUES "
                      f"({agg}, 'n1')"):
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(text(statement))
    command.downgrade(cfg, "0007")
    assert not TABLES & set(inspect(db.engine).get_table_names())
