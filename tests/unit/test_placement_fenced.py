"""A node whose row is up but fenced (confirmed off while silent, fenced by its lease or
rebooted by its fence agent: fence_state 'ok') or being fenced ('pending') takes nothing
new, on both engines and both placement paths (PostgreSQL's one statement, the general
path's shortlist, its every-node fallback, a forced host). A failed attempt leaves a
running node placeable, and its first full heartbeat clears a fenced mark."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from atwill.controller.db.models import Instance, Node
from atwill.controller.db.session import Database
from atwill.controller.ha.monitor import returned
from atwill.controller.servers import placement, placement_one
from atwill.core import scheduler
from tests.unit import migrated_copies
from tests.unit.migrated_copies import MigratedTemplate, migrated_template
from tests.unit.test_placement_fast import PACK, REQ, SPREAD, add_node, new_instance, place

OFF = {"fence_state": "ok", "fenced_at": dt.datetime(2026, 12, 7), "fence_method": "manual"}


template, db = migrated_copies.fixtures()  # tests/unit/migrated_copies.py


@pytest.fixture(scope="module")
def pg_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedTemplate]:
    yield from migrated_template("postgres", tmp_path_factory.mktemp("pgtemplate"))


@pytest.fixture
def pg(pg_template: MigratedTemplate, tmp_path: Path) -> Iterator[Database]:
    yield from pg_template.copy(tmp_path)


def _name(placed: Instance | str) -> str:
    assert isinstance(placed, Instance), placed
    return placed.node_name or ""


@pytest.mark.parametrize("fence", [OFF, {"fence_state": "pending"}])
@pytest.mark.parametrize("settings", [SPREAD, PACK])
def test_a_fenced_node_takes_nothing(db: Database, fence: dict, settings: object) -> None:
    # "a" is the best node: most free RAM (spread), least that fits (pack)
    add_node(db, "a", memory_mb=16384 if settings is SPREAD else 1024, **fence)
    add_node(db, "b", memory_mb=2048)
    add_node(db, "c", memory_mb=8192, memory_mb_used=1024)
    assert _name(place(db, REQ, settings)) == ("c" if settings is SPREAD else "b")
    with db.session() as s:
        shortlist = placement.hosts(s, placement.SHORTLIST, "spread")
        everyone = {h.name: h.up for h in placement.hosts(s)}
    assert "a" not in {h.name for h in shortlist}
    assert everyone == {"a": False, "b": True, "c": True}


def test_the_fallback_over_every_node_skips_a_fenced_one(db: Database) -> None:
    add_node(db, "a", **OFF)  # the only node with room
    add_node(db, "small", memory_mb=256)
    said = place(db, REQ)
    assert isinstance(said, str) and "ComputeFilter" in said, said
    with db.session() as s:
        assert s.query(Node).filter_by(name="a").one().memory_mb_used == 0


def test_a_forced_fenced_host_is_not_up(db: Database) -> None:
    add_node(db, "a", **OFF)
    with db.session() as s:
        inst = new_instance(s, REQ)
        inst.requested_host, inst.force_host = "a", True
        with pytest.raises(scheduler.NoValidHost, match="not up"):
            placement.place(s, SPREAD, inst, REQ)


def test_the_claim_rechecks_the_fence_on_the_row(db: Database) -> None:
    """A node fenced after the shortlist was read: its claim fails."""
    add_node(db, "a")
    with db.session() as s:
        [host] = placement.hosts(s, placement.SHORTLIST, "spread")
        s.execute(update(Node).where(Node.name == "a").values(fence_state="ok"))
        assert placement.claim(s, host, new_instance(s, REQ), REQ) is None


def test_a_failed_fence_leaves_a_running_node_placeable(db: Database) -> None:
    # `atwill node fence` of an up node without a device: 'failed', the node runs on
    add_node(db, "a", fence_state="failed", fence_message="no fence device")
    assert _name(place(db, REQ)) == "a"


def test_a_fenced_node_that_beats_again_takes_work_again(db: Database) -> None:
    node_id = add_node(db, "a", health="suspect", **OFF)  # confirmed off while silent
    assert isinstance(place(db, REQ), str)
    with db.session() as s:
        returned(s, s.get(Node, node_id), None)  # its next full heartbeat
    assert _name(place(db, REQ)) == "a"


def test_one_statement_skips_a_fenced_node(pg: Database) -> None:
    add_node(pg, "a", **OFF)
    add_node(pg, "p", memory_mb=4096, fence_state="pending")
    add_node(pg, "b", memory_mb=2048)
    with pg.session() as s:
        host = placement_one.claim_best(s, REQ, "spread")
        assert host is not None and host.name == "b"
        assert placement_one.claim_best(s, REQ, "pack").name == "b"
