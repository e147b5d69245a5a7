"""Migration 0026 (each volume attachment's own NBD key) on both engines."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from atwill.controller.db.session import Database, alembic_config
from tests.unit.test_migration_0012 import NOW, VOLUME

ATTACHMENT = ("INSERT INTO volume_attachments (id, volume_id, project_id, status, attach_mode, "
              f"delete_on_termination, created_at) VALUES ('a1', 'v1', 'p1', 'attached', "
              f"'rw', false, {NOW})")


def _columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("volume_attachments")}


def test_an_attachment_gets_an_nbd_key_column(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0025")
    with db.engine.begin() as conn:
        default = conn.scalar(text("SELECT id FROM volume_types WHERE name = '__DEFAULT__'"))
        conn.execute(text(VOLUME.format(id="v1", type=default)))
        conn.execute(text(ATTACHMENT))
    assert "nbd_key" not in _columns(db)
    command.upgrade(cfg, "0026")
    with db.engine.begin() as conn:
        # An attachment made before has no key: its QEMU keeps the node's certificate.
        assert conn.scalar(text("SELECT nbd_key FROM volume_attachments")) is None
        conn.execute(text("UPDATE volume_attachments SET nbd_key = :k"), {"k": "cd" * 32})
        assert conn.scalar(text("SELECT nbd_key FROM volume_attachments")) == "cd" * 32
    command.downgrade(cfg, "0025")
    assert "nbd_key" not in _columns(db)
    with db.engine.begin() as conn:
        assert conn.scalar(text("SELECT id FROM volume_attachments")) == "a1"
