"""Migration 0006 (instances: locked_by, locked_reason, tags) on both engines."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config

NEW = {"locked_by", "locked_reason", "tags"}


def columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("instances")}


def test_lock_and_tag_columns_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0005")
    assert not NEW & columns(db)
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO instances (id, name, hostname, project_id, user_id, flavor, vcpus, "
            "memory_mb, disk_gb, meta, config_drive, requested_networks, security_groups, "
            "scheduler_hints, vm_state, power_state, desired_power, reboot_serial, "
            "reboot_hard, rebuild_serial, console, retries, failed_nodes, pci_devices, "
            "launch_index, reservation_id, locked, deleted, created_at, updated_at) VALUES "
            "('i', 'vm', 'vm', 'p', 'u', '{}', 1, 64, 1, '{}', false, '[]', '[]', '{}', "
            "'active', 1, 'running', 0, false, 0, '', 0, '[]', '[]', 0, '', true, false, "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
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
