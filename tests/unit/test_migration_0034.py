"""Migration 0034 (a node's last applied heartbeat order) on both engines: an existing
node keeps its row and has no order yet (its next ordered beat applies); the downgrade
drops the two columns only."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config
from tests.unit.test_migration_0030 import NODE


def _columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("nodes")}


def test_nodes_get_a_heartbeat_order(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0033")
    with db.engine.begin() as conn:
        conn.execute(text(NODE), {"f": False})
    assert not {"beat_epoch", "beat_seq"} & _columns(db)
    command.upgrade(cfg, "0034")
    with db.engine.begin() as conn:
        assert conn.execute(text("SELECT name, beat_epoch, beat_seq FROM nodes")).one() == \
            ("node1", None, None)
        conn.execute(text("UPDATE nodes SET beat_epoch = :e, beat_seq = :s"),
                     {"e": 2**62 - 1, "s": 2**62 - 1})  # the largest a header may carry
    command.downgrade(cfg, "0033")
    assert not {"beat_epoch", "beat_seq"} & _columns(db)
    with db.engine.begin() as conn:
        assert conn.scalar(text("SELECT name FROM nodes")) == "node1"
