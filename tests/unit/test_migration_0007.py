"""Migration 0007 (subnet pools, subnets.subnetpool_id) on both engines."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config

NOW = "'2026-01-01 00:00:00'"


def test_subnet_pools_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0006")
    with db.engine.begin() as conn:
        conn.execute(text(f"INSERT INTO networks (id, project_id, description, tags, "
                          f"revision_number, created_at, updated_at, name, admin_state_up, "
                          f"shared, external, network_type, mtu, port_security_enabled) "
                          f"VALUES ('n', 'p', '', '[]', 0, {NOW}, {NOW}, 'net', true, false, "
                          f"false, 'vxlan', 1400, true)"))
        conn.execute(text(f"INSERT INTO subnets (id, project_id, description, tags, "
                          f"revision_number, created_at, updated_at, network_id, name, "
                          f"ip_version, cidr, allocation_pools, dns_nameservers, host_routes, "
                          f"enable_dhcp) VALUES ('s', 'p', '', '[]', 0, {NOW}, {NOW}, 'n', "
                          f"'old', 4, '10.0.0.0/24', '[]', '[]', '[]', true)"))
    command.upgrade(cfg, "0007")
    assert "subnetpool_id" in {c["name"] for c in inspect(db.engine).get_columns("subnets")}
    with db.engine.begin() as conn:
        # A subnet from before the migration was given its CIDR: it has no pool.
        assert conn.scalar(text("SELECT subnetpool_id FROM subnets")) is None
        conn.execute(text(f"INSERT INTO subnetpools (id, project_id, description, tags, "
                          f"revision_number, created_at, updated_at, name, ip_version, "
                          f"prefixes, default_prefixlen, min_prefixlen, max_prefixlen, "
                          f"default_quota, shared, is_default) VALUES ('sp', 'p', '', '[]', 0, "
                          f"{NOW}, {NOW}, 'pool', 4, '[\"10.9.0.0/16\"]', 24, 8, 32, NULL, "
                          f"false, false)"))
        conn.execute(text("UPDATE subnets SET subnetpool_id = 'sp'"))
        assert conn.scalar(text("SELECT count(*) FROM subnets WHERE subnetpool_id = 'sp'")) == 1
    command.downgrade(cfg, "0006")
    assert "subnetpools" not in inspect(db.engine).get_table_names()
    assert "subnetpool_id" not in {c["name"] for c in inspect(db.engine).get_columns("subnets")}
    with db.engine.begin() as conn:
        assert conn.scalar(text("SELECT name FROM subnets WHERE id = 's'")) == "old"
