"""Migration 0030 (a node's volume service flags, apart from its compute ones) on both
engines: an existing node keeps its row and starts with its volume service enabled."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config

NODE = ("INSERT INTO nodes (id, service_id, name, state, enabled, disabled_reason, "
        "availability_zone, host_ip, vcpus, memory_mb, local_gb, vcpus_used, memory_mb_used, "
        "local_gb_used, running_vms, hypervisor_type, hypervisor_version, inventory, "
        "forced_down, overlay_port, overlay_status, host_status, created_at, updated_at) "
        "VALUES ('n1', 's1', 'node1', 'up', :f, 'kernel', 'nova', '', 0, 0, 0, 0, 0, 0, 0, "
        "'QEMU', 0, '{}', :f, 51820, '{}', '{}', '2026-01-01 00:00:00', "
        "'2026-01-01 00:00:00')")
NEW = {"volume_disabled", "volume_disabled_reason"}


def _columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("nodes")}


def test_nodes_get_volume_service_flags(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0029")
    with db.engine.begin() as conn:
        conn.execute(text(NODE), {"f": False})
    assert not NEW & _columns(db)
    command.upgrade(cfg, "0030")
    with db.engine.begin() as conn:
        row = conn.execute(text("SELECT enabled, volume_disabled, volume_disabled_reason "
                                "FROM nodes")).one()
        # Disabled before the upgrade (the only way then to keep volumes off it): its
        # volume service starts disabled too, for the same reason.
        assert (bool(row[0]), bool(row[1]), row[2]) == (False, True, "kernel")
        conn.execute(text("UPDATE nodes SET volume_disabled = :t, volume_disabled_reason = "
                          "'disk swap'"), {"t": True})
    command.downgrade(cfg, "0029")
    assert not NEW & _columns(db)
    with db.engine.begin() as conn:
        assert conn.scalar(text("SELECT disabled_reason FROM nodes")) == "kernel"
