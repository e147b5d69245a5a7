"""Migration 0019 (peer clouds: peers, peer tokens, mappings, peer images)."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from atwill.controller.db.session import Database, alembic_config

TABLES = {"peers", "peer_tokens", "peer_mappings", "peer_images"}
PEER = ("INSERT INTO peers (id, name, url, ca_pem, ca_hash, credential, inbound_hash, "
        "services, created_at) VALUES (:id, :name, 'https://x', 'pem', 'sha256:0', 'c', "
        ":hash, '[]', '2026-01-01 00:00:00')")
MAPPING = ("INSERT INTO peer_mappings (id, peer_id, remote_project, remote_user, "
           "local_project_id, role, created_at) VALUES (:id, :peer, 'p', '*', 'l', 'member', "
           "'2026-01-01 00:00:00')")


def test_peer_tables_up_and_down(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0018")
    assert not TABLES & set(inspect(db.engine).get_table_names())
    command.upgrade(cfg, "0019")
    assert TABLES <= set(inspect(db.engine).get_table_names())
    with db.engine.begin() as conn:
        conn.execute(text(PEER), {"id": "a", "name": "CloudTwo", "hash": "h1"})
        conn.execute(text(MAPPING), {"id": "m1", "peer": "a"})
    for args in ({"id": "b", "name": "CloudTwo", "hash": "h2"},   # names are unique
                 {"id": "c", "name": "CloudThree", "hash": "h1"}):  # so are credentials
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(text(PEER), args)
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text(MAPPING), {"id": "m2", "peer": "a"})  # one rule per user
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM peers WHERE id = 'a'"))
        # A forgotten peer's mappings go with it.
        assert conn.execute(text("SELECT count(*) FROM peer_mappings")).scalar() == 0
    command.downgrade(cfg, "0018")
    assert not TABLES & set(inspect(db.engine).get_table_names())
