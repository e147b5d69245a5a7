"""Migration 0010 (fence devices and fencing records) on both engines."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from atwill.controller.db.session import Database, alembic_config

NOW = "'2026-01-01 00:00:00'"
DEVICE = ("INSERT INTO fence_devices (id, node_name, name, agent, level, options, secrets, "
          "secret_names, timeout, created_at, updated_at) VALUES ('{id}', 'node1', 'bmc', "
          "'fence_ipmilan', 1, '{{}}', NULL, '[]', 30, " + NOW + ", " + NOW + ")")


def test_fence_devices_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0009")
    assert "fence_devices" not in inspect(db.engine).get_table_names()
    command.upgrade(cfg, "0010")
    with db.engine.begin() as conn:
        conn.execute(text(DEVICE.format(id="d1")))
        conn.execute(text(f"INSERT INTO fence_events (node_name, device, agent, level, action, "
                          f"ok, message, created_at) VALUES ('node1', 'bmc', 'fence_ipmilan', "
                          f"1, 'off', true, 'done', {NOW})"))
        assert conn.scalar(text("SELECT count(*) FROM fence_events WHERE ok")) == 1
    # A node has one device per name.
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text(DEVICE.format(id="d2")))
    command.downgrade(cfg, "0009")
    tables = inspect(db.engine).get_table_names()
    assert "fence_devices" not in tables and "fence_events" not in tables
    assert "nodes" in tables
