"""The shortlist query's own SQL, both engines: which nodes carry the aggregate keys the
always-run filters read (host_facts.GUARDED, read in the same query), and on PostgreSQL
a generic plan that still reads the free-RAM index."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import text

from atwill.controller.db.models import Aggregate, AggregateHost, AggregateMetadata, Node
from atwill.controller.db.session import Database
from atwill.controller.servers import placement
from atwill.core import scheduler
from tests.unit import migrated_copies
from tests.unit.test_placement_fast import REQ, SPREAD, add_node, new_instance, place

template, db = migrated_copies.fixtures()  # tests/unit/migrated_copies.py


def add_aggregate(db: Database, name: str, hosts: list[str], **metadata: str) -> None:
    with db.session() as s:
        agg = Aggregate(name=name)
        s.add(agg)
        s.flush()
        s.add_all([AggregateHost(aggregate_id=agg.id, host=h) for h in hosts])
        s.add_all([AggregateMetadata(aggregate_id=agg.id, key=k, value=v)
                   for k, v in metadata.items()])


def placed_for(db: Database, project: str, req: scheduler.Request = REQ,
               settings: Any = SPREAD) -> str:
    with db.session() as s:
        inst = new_instance(s, req)
        inst.project_id = project
        return placement.place(s, settings, inst, req).name


def test_guarded_nodes_come_with_the_shortlist_and_their_keys_still_count(
        db: Database) -> None:
    add_node(db, "spare")  # the most free RAM: first in spread order
    add_node(db, "theirs", memory_mb_used=512)
    add_node(db, "tagged", memory_mb_used=1024)
    add_node(db, "open", memory_mb_used=2048)
    add_aggregate(db, "spares", ["spare"], ha_reserved="true")
    add_aggregate(db, "isolated", ["theirs"], filter_tenant_id2="other")
    # Neither key: "_" is no LIKE wildcard here (filterXtenantXid is not filter_tenant_id).
    add_aggregate(db, "ssd", ["tagged", "open"], ssd="true", filterXtenantXid="other")
    with db.session() as s:
        shortlist, guarded = placement._hosts(s, 4, "spread", ())
        assert [h.name for h in shortlist] == ["spare", "theirs", "tagged", "open"]
        assert guarded == {"spare", "theirs"}
        pack, guarded = placement._hosts(s, 2, "pack", ())
        assert ([h.name for h in pack], guarded) == (["open", "tagged"], frozenset())
        assert placement._hosts(s, None, "spread", ())[1] is None  # the full list: no flag
    # Not the spare (kept for evacuations), not the node isolated for another project.
    assert placed_for(db, "p") == "tagged"
    assert placed_for(db, "other") == "theirs"
    specs = scheduler.Request(1, 512, 1, extra_specs={
        "aggregate_instance_extra_specs:ssd": "true"})
    assert placed_for(db, "p", specs) == "tagged"  # all metadata read when the flavor asks


def test_only_guarded_nodes_left_is_still_a_clear_no(db: Database) -> None:
    add_node(db, "spare")
    add_aggregate(db, "spares", ["spare"], ha_reserved="true")
    assert place(db, REQ) == ("No valid host was found. ReservedHostFilter eliminated "
                              "1 of 1.")


def test_postgresql_generic_plan_reads_the_free_ram_index(db: Database) -> None:
    """psycopg prepares a statement run five times; the generic plan must not sort every
    node (with `health <> $1` bound, PostgreSQL guessed no node was left and did)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's plan cache")
    with db.session() as s:
        s.add_all([Node(name=f"n-{i:03d}", vcpus=8, memory_mb=16384, local_gb=100,
                        memory_mb_used=i * 16, inventory={}) for i in range(300)])
    with db.engine.connect() as conn:
        conn.execute(text("ANALYZE nodes"))
        sql = str(placement._QUERIES["spread"].params(best_first=16).compile(
            dialect=conn.dialect, compile_kwargs={"render_postcompile": True}))
        names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
        for number, name in enumerate(names, 1):
            sql = sql.replace(f"%({name})s", f"${number}")
        raw = conn.connection.driver_connection
        raw.execute("SET plan_cache_mode = force_generic_plan")
        raw.execute("PREPARE shortlist AS " + sql.replace("%%", "%"))
        try:
            args = ", ".join(["'filter/_tenant/_id'", "'ha_reserved'"][:len(names)])
            plan = "\n".join(r[0] for r in raw.execute(f"EXPLAIN EXECUTE shortlist({args})"))
        finally:
            raw.execute("DEALLOCATE shortlist")
            raw.execute("RESET plan_cache_mode")
            conn.rollback()
    assert "ix_nodes_free_ram_spread" in plan, plan
    assert "Sort" not in plan, plan
