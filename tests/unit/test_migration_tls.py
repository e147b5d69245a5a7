"""Each live migration's TLS identity: made by the controller, handed to its two agents."""

from __future__ import annotations

import re

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from atwill.agent.hypervisor.migration import Tls
from atwill.controller.db.models import Migration
from atwill.controller.servers.live_migration_agents import tls


def test_every_migration_gets_its_own_key_which_the_agents_accept() -> None:
    engine = create_engine("sqlite://")
    Migration.metadata.create_all(engine)
    with Session(engine) as session:
        records = [Migration(instance_uuid="i", status="queued") for _ in range(2)]
        session.add_all(records)
        session.flush()
        keys = [r.tls_key for r in records]
        assert all(k is not None and re.fullmatch(r"[0-9a-f]{64}", k) for k in keys)
        assert keys[0] != keys[1]
        given = tls(records[0])
        assert given == {"username": f"atwill-migration-{records[0].id}", "key": keys[0]}
        assert Tls.of(given) == Tls(given["username"], keys[0])
        records[1].tls_key = None  # recorded before there were keys
        assert tls(records[1]) is None
    engine.dispose()
