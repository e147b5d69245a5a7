"""PostgreSQL's one-statement placement (placement_one) picks the node the general path
would, and leaves every case it cannot judge to it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atwill.controller.db.models import Node
from atwill.controller.db.session import Database
from atwill.controller.servers import host_facts, placement, placement_one
from atwill.core import scheduler
from tests.unit.migrated_copies import MigratedTemplate, migrated_template
from tests.unit.test_placement_fast import PACK, REQ, SPREAD, add_node, new_instance
from tests.unit.test_placement_shortlist_sql import add_aggregate


@pytest.fixture(scope="module")
def pg_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedTemplate]:
    yield from migrated_template("postgres", tmp_path_factory.mktemp("pgtemplate"))


@pytest.fixture
def pg(pg_template: MigratedTemplate, tmp_path: Path) -> Iterator[Database]:
    """A copy of the module's migrated database (tests/unit/migrated_copies.py)."""
    yield from pg_template.copy(tmp_path)


def test_the_sql_covers_the_filters_that_always_run() -> None:
    assert placement_one.COVERS == scheduler.ALWAYS


@pytest.mark.parametrize(("change", "plain"), [
    ({}, True), ({"extra_specs": {"hw:cpu_policy": "dedicated"}}, True),
    ({"availability_zone": "az1"}, False), ({"image_properties": {"architecture": "x"}}, False),
    ({"ignore_hosts": frozenset({"n"})}, False), ({"evacuation": True}, False),
    ({"group_policy": "soft-anti-affinity"}, False), ({"same_host": frozenset({"i"})}, False),
    ({"extra_specs": {"capabilities:cpu_info:arch": "x86_64"}}, False),
    ({"pci": (scheduler.PciRequest("a", "10de", "1028", 1),)}, False),
])
def test_capacity_only(change: dict[str, Any], plain: bool) -> None:
    req = scheduler.Request(1, 512, 1, **change)
    assert scheduler.capacity_only(req) is plain


def _general(db: Database, req: scheduler.Request, strategy: str) -> str:
    """The node the general path's filters and weighers put first (nothing claimed)."""
    with db.session() as s:
        shortlist, guarded = placement._hosts(s, placement.SHORTLIST, strategy, frozenset())
        return scheduler.select(host_facts.enrich(s, shortlist, req, guarded), req,
                                strategy)[0].name


def _one(db: Database, req: scheduler.Request, strategy: str) -> str | None:
    with db.session() as s:
        host = placement_one.claim_best(s, req, strategy)
        return None if host is None else host.name


@pytest.mark.parametrize("strategy", ["spread", "pack"])
def test_same_node_as_the_general_path(pg: Database, strategy: str) -> None:
    rng = random.Random(19)
    # Ties on free RAM (decided by free vCPUs, then the name in code-point order: "B" <
    # "a" there, not in a linguistic collation), nodes that do not fit, unusable ones.
    for index in range(40):
        add_node(pg, f"{rng.choice('aB')}-{index:02d}", vcpus=rng.choice([1, 2, 8]),
                 memory_mb=8192, memory_mb_used=rng.choice([0, 1024, 12000]),
                 vcpus_used=rng.choice([0, 4, 16]), local_gb=rng.choice([0, 100]),
                 enabled=rng.random() > 0.1)
    req = scheduler.Request(2, 1024, 10)
    for _ in range(25):
        expected = _general(pg, req, strategy)
        assert _one(pg, req, strategy) == expected


def test_the_claim_is_made_and_the_host_is_as_chosen(pg: Database) -> None:
    add_node(pg, "a", memory_mb_used=1024)
    add_node(pg, "b")
    with pg.session() as s:
        inst = new_instance(s, REQ)
        host = placement.place(s, SPREAD, inst, REQ)
        assert (inst.node_id, inst.node_name, host.name) == (host.id, "b", "b")
        assert (host.memory_mb_used, host.vcpus_used, host.cpu_ratio) == (0, 0, 16.0)
    with pg.session() as s:
        used = {n.name: (n.vcpus_used, n.memory_mb_used, n.local_gb_used)
                for n in s.query(Node)}
    assert used == {"a": (0, 1024, 0), "b": (1, 512, 1)}


def test_a_guarded_node_in_the_shortlist_leaves_it_to_the_general_path(pg: Database) -> None:
    add_node(pg, "a")
    add_node(pg, "b", memory_mb_used=1024)
    add_aggregate(pg, "mine", ["a"], filter_tenant_id="other")
    assert _one(pg, REQ, "spread") is None
    with pg.session() as s:  # the general path: tenant isolation keeps "a" for "other"
        inst = new_instance(s, REQ)
        assert placement.place(s, SPREAD, inst, REQ).name == "b"


def test_own_ratios_or_no_fit_leave_it_to_the_general_path(pg: Database) -> None:
    add_node(pg, "a", inventory={"ram_allocation_ratio": 1.0})
    assert _one(pg, REQ, "pack") is None
    add_node(pg, "tiny", memory_mb=256, inventory={})
    with pg.session() as s:
        inst = new_instance(s, REQ)
        assert placement.place(s, PACK, inst, REQ).name == "a"
    big = scheduler.Request(1, 64 * 1024, 1)
    assert _one(pg, big, "spread") is None
    with pg.session() as s, pytest.raises(scheduler.NoValidHost, match="RamFilter"):
        placement.place(s, SPREAD, new_instance(s, big), big)
