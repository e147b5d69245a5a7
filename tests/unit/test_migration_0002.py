"""Migration 0002 (instances.snapshot_image_id) on both engines: up with data, and down."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config

ROW = {"id": "i-1", "name": "vm", "hostname": "vm", "project_id": "p", "user_id": "u",
       "flavor": "{}", "vcpus": 1, "memory_mb": 64, "disk_gb": 1, "meta": "{}",
       "config_drive": False, "requested_networks": "[]", "security_groups": "[]",
       "scheduler_hints": "{}", "vm_state": "active", "power_state": 1,
       "desired_power": "running", "reboot_serial": 0, "reboot_hard": False,
       "rebuild_serial": 0, "console": "", "retries": 0, "failed_nodes": "[]",
       "pci_devices": "[]", "launch_index": 0, "reservation_id": "r", "locked": False,
       "deleted": False, "created_at": "2026-01-01 00:00:00",
       "updated_at": "2026-01-01 00:00:00"}



def columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("instances")}


def test_snapshot_column_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0001")
    names = ", ".join(ROW)
    with db.engine.begin() as conn:
        conn.execute(text(f"INSERT INTO instances ({names}) VALUES "
                          f"({', '.join(':' + k for k in ROW)})"), ROW)
    command.upgrade(cfg, "0002")
    assert "snapshot_image_id" in columns(db)
    indexes = {i["name"] for i in inspect(db.engine).get_indexes("instances")}
    assert "ix_instances_snapshot_image_id" in indexes
    with db.engine.begin() as conn:
        # Rows from before the migration have no pending snapshot; the column is nullable.
        assert conn.scalar(text("SELECT snapshot_image_id FROM instances")) is None
        conn.execute(text("UPDATE instances SET snapshot_image_id = 'img-1'"))
        assert conn.scalar(text(
            "SELECT id FROM instances WHERE snapshot_image_id = 'img-1'")) == "i-1"
    command.downgrade(cfg, "0001")
    assert "snapshot_image_id" not in columns(db)
    with db.engine.begin() as conn:
        assert conn.scalar(text("SELECT name FROM instances WHERE id = 'i-1'")) == "vm"
