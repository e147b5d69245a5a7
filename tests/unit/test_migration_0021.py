"""Migration 0021 (list indexes) on both engines: the keyset order of each list is indexed."""

from __future__ import annotations

import warnings

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.exc import SAWarning

from atwill.controller.db.session import Database, alembic_config


def _indexes(db: Database, table: str) -> dict[str, list[str]]:
    # The nodes table's expression indexes (free RAM) cannot be reflected: that is expected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        return {i["name"]: i["column_names"] for i in inspect(db.engine).get_indexes(table)}


def test_list_indexes_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0020")
    assert "ix_ports_list_network" not in _indexes(db, "ports")
    command.upgrade(cfg, "0021")
    ports = _indexes(db, "ports")
    assert ports["ix_ports_list_network"] == ["network_id", "created_at", "id"]
    assert ports["ix_ports_list_project"] == ["project_id", "created_at", "id"]
    assert _indexes(db, "instances")["ix_instances_list_project"] == [
        "project_id", "deleted", "created_at", "id"]
    assert "ix_floating_ips_list_all" in _indexes(db, "floating_ips")
    assert "ix_nodes_list" in _indexes(db, "nodes")
    command.downgrade(cfg, "0020")
    assert not [n for n in _indexes(db, "ports") if n.startswith("ix_ports_list")]
    assert "ix_instances_list_all" not in _indexes(db, "instances")
