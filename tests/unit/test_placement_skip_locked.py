"""On PostgreSQL a claim first passes over a node whose row another claim holds (not
yet committed) and takes the next candidate, instead of queueing behind it; the fit is
still judged on the current row, so nothing is overbooked."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text

from atwill.controller.db.models import Instance, Node
from atwill.controller.db.session import Database, migrate
from atwill.controller.servers import placement
from atwill.core import scheduler
from tests.conftest import fresh_postgres

REQ = scheduler.Request(vcpus=2, memory_mb=4096, disk_gb=20)


@pytest.fixture
def db() -> Iterator[Database]:
    for database in fresh_postgres():
        migrate(database.engine)
        with database.session() as session:
            for name in ("node-a", "node-b"):
                session.add(Node(name=name, state="up", vcpus=8, memory_mb=16384,
                                 local_gb=200, inventory={}))
        yield database


def _instance(session) -> Instance:  # noqa: ANN001
    inst = Instance(id=str(uuid.uuid4()), name="s", project_id="p", user_id="u",
                    vcpus=REQ.vcpus, memory_mb=REQ.memory_mb, disk_gb=REQ.disk_gb)
    session.add(inst)
    session.flush()
    return inst


def test_a_claim_passes_over_a_node_another_claim_holds(db: Database) -> None:
    with db.session() as holder, db.session() as racer:
        hosts = {h.name: h for h in placement.hosts(holder)}
        assert placement.claim(holder, hosts["node-a"], _instance(holder), REQ) == []
        racer.execute(text("SET LOCAL lock_timeout = '5s'"))  # a wait would fail the test
        inst = _instance(racer)
        assert placement.claim(racer, hosts["node-a"], inst, REQ, unlocked_only=True) is None
        assert placement.claim(racer, hosts["node-b"], inst, REQ, unlocked_only=True) == []
    with db.session() as session:
        used = dict(session.execute(select(Node.name, Node.memory_mb_used)).all())
    assert used == {"node-a": 4096, "node-b": 4096}


def test_place_takes_the_next_node_while_the_best_is_held(db: Database) -> None:
    settings = type("Settings", (), {"scheduler_weigher": "spread"})()
    with db.session() as holder, db.session() as racer:
        first = placement.place(holder, settings, _instance(holder), REQ)
        racer.execute(text("SET LOCAL lock_timeout = '5s'"))
        # The racer read its shortlist before the holder's claim is committed: the same
        # best node first, held; it takes the other without waiting.
        second = placement.place(racer, settings, _instance(racer), REQ)
        assert {first.name, second.name} == {"node-a", "node-b"}
