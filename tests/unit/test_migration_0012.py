"""Migration 0012 (volume types with __DEFAULT__, volumes, snapshots, attachments, quotas)."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from atwill.controller.db.session import Database, alembic_config

NOW = "'2026-01-01 00:00:00'"
VOLUME = ("INSERT INTO volumes (id, project_id, user_id, size, status, availability_zone, "
          "volume_type_id, bootable, readonly, multiattach, meta, image_meta, exports, "
          "created_at) VALUES ('{id}', 'p1', 'u1', 1, 'creating', 'nova', '{type}', false, "
          "false, false, '{{}}', '{{}}', '{{}}', " + NOW + ")")
TABLES = {"volume_types", "volumes", "volume_snapshots", "volume_attachments",
          "volume_quotas", "volume_quota_classes"}


def test_volumes_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0011")
    assert not TABLES & set(inspect(db.engine).get_table_names())
    command.upgrade(cfg, "0012")
    with db.engine.begin() as conn:
        default = conn.scalar(text("SELECT id FROM volume_types WHERE name = '__DEFAULT__'"))
        assert default
        conn.execute(text(VOLUME.format(id="v1", type=default)))
        conn.execute(text("INSERT INTO volume_snapshots (id, volume_id, project_id, user_id, "
                          "size, status, meta, created_at) VALUES ('s1', 'v1', 'p1', 'u1', 1, "
                          f"'creating', '{{}}', {NOW})"))
        conn.execute(text("INSERT INTO volume_attachments (id, volume_id, project_id, status, "
                          "attach_mode, delete_on_termination, created_at) VALUES ('a1', "
                          f"'v1', 'p1', 'reserved', 'rw', false, {NOW})"))
    # A volume needs a type that exists, and type names are unique.
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text(VOLUME.format(id="v2", type="no-such-type")))
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text("INSERT INTO volume_types (id, name, is_public, extra_specs, "
                          f"created_at) VALUES ('t2', '__DEFAULT__', true, '{{}}', {NOW})"))
    command.downgrade(cfg, "0011")
    assert not TABLES & set(inspect(db.engine).get_table_names())
