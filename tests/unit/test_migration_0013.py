"""Migration 0013 (orchestration stacks, resources, events) on both engines."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from atwill.controller.db.session import Database, alembic_config

NOW = "'2026-01-01 00:00:00'"
STACK = ("INSERT INTO orchestration_stacks (id, name, project_id, user_id, action, status, "
         "status_reason, template, files, environment, parameters, outputs, tags, "
         "disable_rollback, created_at) VALUES ('s1', 'web', 'p1', 'u1', 'CREATE', "
         "'COMPLETE', '', '{}', '{}', '{}', '{}', '{}', '[]', false, " + NOW + ")")
RESOURCE = ("INSERT INTO orchestration_resources (id, stack_id, name, type, action, status, "
            "status_reason, properties, data, required_by, created_at) VALUES ('{id}', 's1', "
            "'net', 'OS::Neutron::Net', 'CREATE', 'COMPLETE', '', '{{}}', '{{}}', '[]', "
            + NOW + ")")


def test_orchestration_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0012")
    assert "orchestration_stacks" not in inspect(db.engine).get_table_names()
    command.upgrade(cfg, "0013")
    with db.engine.begin() as conn:
        conn.execute(text(STACK))
        conn.execute(text(RESOURCE.format(id="r1")))
        conn.execute(text("INSERT INTO orchestration_events (id, stack_id, resource_name, "
                          "resource_type, physical_resource_id, action, status, reason, "
                          f"created_at) VALUES ('e1', 's1', 'web', 'OS::Heat::Stack', 's1', "
                          f"'CREATE', 'COMPLETE', 'done', {NOW})"))
    # A stack has one resource per name.
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text(RESOURCE.format(id="r2")))
    command.downgrade(cfg, "0012")
    tables = inspect(db.engine).get_table_names()
    assert not [t for t in tables if t.startswith("orchestration_")]
    assert "nodes" in tables
