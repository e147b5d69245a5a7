"""PostgreSQL's one-statement placement (placement_one) against a change committed after
its snapshot: an allocation ratio set on the node it picked makes it claim nothing (the
general path then decides with the ratio), instead of claiming at the default ratio.

The race is made deterministic: the statement's aggregate check calls starts_with, which
the claim's session resolves (search_path) to a copy that first waits for an advisory
lock the test holds; the statement's snapshot is taken by then, its row lock not yet."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text, update

from atwill.controller.db.models import Node
from atwill.controller.db.session import Database, migrate
from atwill.controller.servers import placement, placement_one
from atwill.core import scheduler
from tests.conftest import fresh_postgres
from tests.unit.test_placement_fast import SPREAD, add_node, new_instance
from tests.unit.test_placement_shortlist_sql import add_aggregate

LOCK = 734_211
WAITER = f"""
CREATE SCHEMA waiter;
CREATE FUNCTION waiter.starts_with(text, text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM pg_advisory_xact_lock_shared({LOCK});
    RETURN pg_catalog.starts_with($1, $2);
END $f$;
"""


@pytest.fixture
def pg() -> Iterator[Database]:
    for database in fresh_postgres():  # its own database, dropped after: schema included
        migrate(database.engine)
        yield database


def _waiting(db: Database) -> bool:
    with db.engine.connect() as conn:
        return bool(conn.scalar(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")))


@pytest.mark.parametrize("kind", ["cpu", "ram", "disk"])
def test_a_ratio_committed_after_the_snapshot_makes_it_claim_nothing(
        pg: Database, kind: str) -> None:
    # room at the default ratios (16 vCPUs, 1.5 RAM, 1 disk), none at the new one
    used = {"cpu": {"vcpus_used": 4}, "ram": {"memory_mb_used": 4096},
            "disk": {"local_gb_used": 60}}[kind]
    add_node(pg, "a", vcpus=4, memory_mb=4096, local_gb=100, **used)
    ratio = 0.5 if kind == "disk" else 1.0
    req = {"cpu": scheduler.Request(1, 0, 0), "ram": scheduler.Request(0, 512, 0),
           "disk": scheduler.Request(0, 0, 10)}[kind]
    add_aggregate(pg, "colours", ["a"], colour="red")  # read, guards nothing
    with pg.engine.begin() as conn:
        conn.execute(text(WAITER))
    got: dict[str, object] = {}

    def claim() -> None:
        try:
            with pg.session() as s:
                s.execute(text("SET LOCAL search_path = waiter, public, pg_catalog"))
                host = placement_one.claim_best(s, req, "spread")
                got["host"] = None if host is None else host.name
        except Exception as err:  # noqa: BLE001 - reported below
            got["error"] = err

    with pg.engine.connect() as holder:
        holder.execute(text(f"SELECT pg_advisory_lock({LOCK})"))
        claimer = threading.Thread(target=claim)
        claimer.start()
        try:
            deadline = time.monotonic() + 10
            while not _waiting(pg):
                assert time.monotonic() < deadline, got
                time.sleep(0.02)
            with pg.session() as s:  # the operator's ratio, committed meanwhile
                s.execute(update(Node).where(Node.name == "a").values(
                    inventory={"arch": "x86_64", f"{kind}_allocation_ratio": ratio}))
        finally:
            holder.execute(text(f"SELECT pg_advisory_unlock({LOCK})"))
            holder.commit()
            claimer.join(10)
    assert "error" not in got, got
    assert got == {"host": None}  # before: "a", claimed at the default ratio
    with pg.session() as s:
        row = s.query(Node).filter_by(name="a").one()
        assert {k: getattr(row, k) for k in used} == used  # nothing claimed
        # the general path decides with the ratio: no room
        with pytest.raises(scheduler.NoValidHost):
            placement.place(s, SPREAD, new_instance(s, req), req)
