"""Migration 0009 (node health and fencing columns, evacuations) on both engines."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config

NOW = "'2026-01-01 00:00:00'"
HEALTH_COLUMNS = {"health", "health_changed_at", "fence_state", "fence_method",
                  "fence_message", "fenced_at", "heartbeat_gap_peak"}


def test_node_health_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0008")
    with db.engine.begin() as conn:
        conn.execute(text(
            f"INSERT INTO nodes (id, service_id, name, state, enabled, availability_zone, "
            f"host_ip, vcpus, memory_mb, local_gb, vcpus_used, memory_mb_used, local_gb_used, "
            f"running_vms, hypervisor_type, hypervisor_version, inventory, forced_down, "
            f"overlay_port, overlay_status, host_status, created_at, updated_at) VALUES "
            f"('n1', 's1', 'old', 'up', true, 'nova', '', 1, 1, 1, 0, 0, 0, 0, 'QEMU', 0, "
            f"'{{}}', false, 51820, '{{}}', '{{}}', {NOW}, {NOW})"))
    command.upgrade(cfg, "0009")
    assert HEALTH_COLUMNS <= {c["name"] for c in inspect(db.engine).get_columns("nodes")}
    with db.engine.begin() as conn:
        # A node from before the migration is healthy and was never fenced.
        row = conn.execute(text("SELECT health, fenced_at, fence_state FROM nodes")).one()
        assert tuple(row) == ("up", None, None)
        conn.execute(text(
            f"INSERT INTO evacuations (instance_id, source_node_id, source_node_name, status, "
            f"reason, created_at, updated_at) VALUES ('i1', 'n1', 'old', 'pending', 'auto', "
            f"{NOW}, {NOW})"))
        row = conn.execute(text("SELECT stop_after, cleaned_at FROM evacuations")).one()
        assert (bool(row[0]), row[1]) == (False, None)
    command.downgrade(cfg, "0008")
    assert "evacuations" not in inspect(db.engine).get_table_names()
    assert not HEALTH_COLUMNS & {c["name"] for c in inspect(db.engine).get_columns("nodes")}
    with db.engine.begin() as conn:
        assert conn.scalar(text("SELECT name FROM nodes WHERE id = 'n1'")) == "old"
