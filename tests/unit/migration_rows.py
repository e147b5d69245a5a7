"""Rows as the schema had them before a migration, for the migration tests to carry over."""

from __future__ import annotations

from sqlalchemy import Connection, text

INSTANCE_COLUMNS = (
    "id, name, hostname, project_id, user_id, flavor, vcpus, memory_mb, disk_gb, meta, "
    "config_drive, requested_networks, security_groups, scheduler_hints, vm_state, "
    "power_state, desired_power, reboot_serial, reboot_hard, rebuild_serial, console, "
    "retries, failed_nodes, pci_devices, launch_index, reservation_id, locked, deleted, "
    "created_at, updated_at")


def insert_instance(conn: Connection, locked: bool = False) -> None:
    """One active instance 'i' with the columns of migration 0005 (and later) only."""
    conn.execute(text(
        f"INSERT INTO instances ({INSTANCE_COLUMNS}) VALUES "
        "('i', 'vm', 'vm', 'p', 'u', '{}', 1, 64, 1, '{}', false, '[]', '[]', '{}', "
        "'active', 1, 'running', 0, false, 0, '', 0, '[]', '[]', 0, '', :locked, false, "
        "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"), {"locked": locked})
