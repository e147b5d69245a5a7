"""Migration 0023 (peer secrets sealed, not in plaintext; mappings keyed on domain + name)."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from atwill.controller.db.session import Database, alembic_config

OLD_PEER = ("INSERT INTO peers (id, name, url, ca_pem, ca_hash, credential, inbound_hash, "
            "services, created_at) VALUES ('a', 'CloudTwo', 'https://x', 'pem', 'sha256:0', "
            "'atwp_plaintext', 'h1', '[]', '2026-01-01 00:00:00')")
OLD_IMAGE = ("INSERT INTO peer_images (id, peer_id, min_ram, min_disk, properties, "
             "fetch_token, updated_at) VALUES ('i', 'a', 0, 0, '{}', 'gAAAA-user-token', "
             "'2026-01-01 00:00:00')")
MAPPING = ("INSERT INTO peer_mappings (id, peer_id, remote_project, remote_user, "
           "remote_project_domain, remote_user_domain, local_project_id, role, created_at) "
           "VALUES (:id, 'a', 'p', '*', :domain, :domain, 'l', 'member', "
           "'2026-01-01 00:00:00')")


def _migrate(db: Database, cfg: Config, to: str, down: bool = False) -> None:
    """As the controller migrates: on its own engine's connection (SQLite's foreign keys
    on, so a table copied and dropped would take its children's rows with it)."""
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, to)


def _dump(db: Database) -> str:
    with db.engine.connect() as conn:
        rows = [conn.execute(text(f"SELECT * FROM {t}")).all()  # noqa: S608
                for t in ("peers", "peer_images", "peer_mappings")]
    return repr(rows)


def test_plaintext_secrets_are_dropped_and_rules_get_a_domain(db: Database) -> None:
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    _migrate(db, cfg, "0022")
    with db.engine.begin() as conn:
        conn.execute(text(OLD_PEER))
        conn.execute(text(OLD_IMAGE))
        conn.execute(text("INSERT INTO peer_mappings (id, peer_id, remote_project, "
                          "remote_user, local_project_id, role, created_at) VALUES ('m1', "
                          "'a', 'p', '*', 'l', 'member', '2026-01-01 00:00:00')"))
    assert "atwp_plaintext" in _dump(db)
    _migrate(db, cfg, "0023")
    columns = {c["name"] for c in inspect(db.engine).get_columns("peers")}
    assert "credential" not in columns and "credential_sealed" in columns
    # A copy of the database no longer holds the peer's credential nor a user's token.
    dump = _dump(db)
    assert "atwp_plaintext" not in dump and "user-token" not in dump
    with db.engine.connect() as conn:
        rule = conn.execute(text("SELECT remote_project_domain, remote_user_domain "
                                 "FROM peer_mappings")).one()
    assert tuple(rule) == ("Default", "Default")  # the rule (and the peer) are kept
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM peer_images")).scalar() == 1
    with db.engine.begin() as conn:  # the same names in another domain are another rule
        conn.execute(text(MAPPING), {"id": "m2", "domain": "Elsewhere"})
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text(MAPPING), {"id": "m3", "domain": "Elsewhere"})
    with db.engine.begin() as conn:  # a forgotten peer's mappings still go with it
        conn.execute(text("DELETE FROM peers WHERE id = 'a'"))
        assert conn.execute(text("SELECT count(*) FROM peer_mappings")).scalar() == 0
        conn.execute(text("INSERT INTO peers (id, name, url, ca_pem, ca_hash, inbound_hash, "
                          "services, created_at) VALUES ('a', 'CloudTwo', 'https://x', 'p', "
                          "'s', 'h1', '[]', '2026-01-01 00:00:00')"))
        conn.execute(text(MAPPING), {"id": "m4", "domain": "Default"})
        conn.execute(text(MAPPING), {"id": "m5", "domain": "Elsewhere"})
    _migrate(db, cfg, "0022", down=True)
    with db.engine.connect() as conn:
        kept = conn.execute(text("SELECT id FROM peer_mappings")).scalars().all()
    assert kept == ["m4"]  # another domain's rule cannot be said without its domain
    assert "credential" in {c["name"] for c in inspect(db.engine).get_columns("peers")}
