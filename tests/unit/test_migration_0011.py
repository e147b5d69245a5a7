"""Migration 0011 (instances: requested_host, force_host, shelved_image_id, shelved_at)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config

NEW = {"requested_host", "force_host", "shelved_image_id", "shelved_at"}


def columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("instances")}


def test_host_and_shelve_columns_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0010")
    assert not NEW & columns(db)
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO instances (id, name, hostname, project_id, user_id, flavor, vcpus, "
            "memory_mb, disk_gb, meta, config_drive, requested_networks, security_groups, "
            "scheduler_hints, vm_state, power_state, desired_power, reboot_serial, "
            "reboot_hard, rebuild_serial, console, retries, failed_nodes, pci_devices, "
            "launch_index, reservation_id, locked, deleted, created_at, updated_at) VALUES "
            "('i', 'vm', 'vm', 'p', 'u', '{}', 1, 64, 1, '{}', false, '[]', '[]', '{}', "
            "'active', 1, 'running', 0, false, 0, '', 0, '[]', '[]', 0, '', false, false, "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
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
