"""A new volume locks only the storage node it is given (volume/placement.py): on
PostgreSQL a create or a boot that makes a volume never waits for the capacity lock of a
node it does not go to; placement stays exact under concurrency on both engines."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from atwill.controller.compute import server_volumes_boot as boot
from atwill.controller.db.models import Node
from atwill.controller.db.session import Database
from atwill.controller.db.volume import Volume, VolumeType
from atwill.controller.volume import placement
from atwill.core.policy import Credentials
from atwill.core.volume_placement import Backend, pick
from tests.unit import migrated_copies

GIB_ROOM = {"node-a": 3, "node-b": 2}


template, db = migrated_copies.fixtures()  # tests/unit/migrated_copies.py


@pytest.fixture
def vdb(db: Database) -> Iterator[Database]:
    with db.session() as session:
        for name, room in GIB_ROOM.items():
            session.add(Node(name=name, state="up", vcpus=8, memory_mb=16384, local_gb=200,
                             inventory={"storage": {"free_gb": room, "total_gb": 100}}))
        session.add(VolumeType(id="t1", name="narrow-test"))
    yield db


def _nodes(session: Session) -> dict[str, str]:
    return dict(session.execute(select(Node.name, Node.id)).all())


def _volume(session: Session, size: int, project: str = "p") -> Volume:
    vol = Volume(project_id=project, user_id="u", size=size, volume_type_id="t1",
                 status="creating", meta={}, image_meta={}, exports={})
    placement.place(session, vol)
    session.add(vol)
    session.flush()
    return vol


def _placed(db: Database) -> dict[str | None, int]:
    with db.session() as session:
        return dict(session.execute(select(Volume.node_name, func.sum(Volume.size))
                                    .where(Volume.status != "error")
                                    .group_by(Volume.node_name)).all())


def _postgres(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the capacity locks are per node on PostgreSQL only (SQLite has one)")


def test_ranked_starts_with_picks_choice() -> None:
    backends = [Backend(str(i), f"n{i}", free, used)
                for i, (free, used) in enumerate([(5, 1), (9, 6), (4, 0), (2, 2), (4, 0)])]
    for size in range(6):
        order = placement.ranked(backends, size)
        assert (order[0] if order else None) == pick(backends, size)
        assert all(b.room_gb >= size for b in order)


def test_prepick_counts_the_volumes_before(vdb: Database) -> None:
    with vdb.session() as session:
        ids = _nodes(session)
        # 2 GiB on node-a (room 3 -> 1); the next 2 GiB only fits node-b; 5 GiB nowhere.
        assert placement.prepick(session, [2, 2, 5]) == {ids["node-a"], ids["node-b"]}
        assert placement.prepick(session, [1]) == {ids["node-a"]}


def test_a_create_does_not_wait_for_a_node_it_does_not_go_to(vdb: Database) -> None:
    _postgres(vdb)
    with vdb.session() as holder, vdb.session() as racer:
        ids = _nodes(holder)
        placement.lock_nodes(holder, [ids["node-b"]])  # e.g. an extend on node-b, open
        racer.execute(text("SET LOCAL lock_timeout = '3s'"))  # a wait fails the test
        assert _volume(racer, 1).node_name == "node-a"  # node-a ranks first
        assert placement.held_nodes(racer) == {ids["node-a"]}


def test_a_create_passes_over_the_best_node_while_it_is_held(vdb: Database) -> None:
    _postgres(vdb)
    with vdb.session() as holder, vdb.session() as racer:
        ids = _nodes(holder)
        assert _volume(holder, 1).node_name == "node-a"  # holds node-a until commit
        racer.execute(text("SET LOCAL lock_timeout = '3s'"))
        assert _volume(racer, 1).node_name == "node-b"
        assert placement.held_nodes(racer) == {ids["node-b"]}


def test_a_create_waits_when_every_node_with_room_is_held(vdb: Database) -> None:
    _postgres(vdb)
    with vdb.session() as holder:
        assert _volume(holder, 2).node_name == "node-a"  # holds node-a until commit
        done: list[Volume] = []

        def racer() -> None:
            with vdb.session() as session:
                done.append(_volume(session, 3))  # only node-a had room for 3 GiB

        thread = threading.Thread(target=racer)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive() and not done  # waiting for node-a: nothing else fits
    thread.join(30)
    assert not thread.is_alive()
    assert done[0].status == "error" and done[0].node_id is None  # read under the lock
    assert _placed(vdb) == {"node-a": 2}


def test_boot_locks_only_the_node_its_new_volume_goes_to(vdb: Database) -> None:
    _postgres(vdb)
    creds = Credentials(user_id="u", project_id="p", roles=frozenset({"member"}))
    with vdb.session() as holder, vdb.session() as racer:
        ids = _nodes(holder)
        placement.lock_nodes(holder, [ids["node-b"]])
        racer.execute(text("SET LOCAL lock_timeout = '3s'"))
        # It used to lock every storage node here (lock_order.all_storage_nodes).
        boot.lock_ahead(racer, creds, [{"source": "blank", "uuid": None, "size": 1,
                                        "boot_index": 0}])
        assert placement.held_nodes(racer) == {ids["node-a"]}
        assert _volume(racer, 1).node_name == "node-a"


def test_a_picked_node_that_filled_is_replaced_by_trying_others(
        vdb: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    _postgres(vdb)
    monkeypatch.setattr(placement, "CLAIM_WAIT", 1.0)
    with vdb.session() as racer:
        ids = _nodes(racer)
        assert placement.prepick(racer, [2]) == {ids["node-a"]}
        with vdb.session() as other:  # fills node-a between the pick and the lock
            assert _volume(other, 3).node_name == "node-a"
        placement.lock_nodes(racer, [ids["node-a"]])
        placement.rows_locked(racer, ["some-volume"])  # as a boot naming a volume
        with vdb.session() as third:
            placement.lock_nodes(third, [ids["node-b"]])
            started = time.monotonic()
            vol = _volume(racer, 2)  # node-a full, node-b held: tried, never waited for
            assert vol.status == "error" and time.monotonic() - started < 5
        assert _volume(racer, 2).node_name == "node-b"  # free now: tried and taken
    assert _placed(vdb) == {"node-a": 3, "node-b": 2}


@pytest.mark.parametrize("racers", [10])
def test_concurrent_creates_fill_both_nodes_exactly(vdb: Database, racers: int) -> None:
    barrier = threading.Barrier(racers)
    errors: list[BaseException] = []

    def create(index: int) -> None:
        try:
            barrier.wait(30)
            with vdb.session() as session:
                _volume(session, 1, project=f"p{index}")
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert _placed(vdb) == GIB_ROOM  # every GiB of room taken, none twice
    with vdb.session() as session:
        assert session.scalar(select(func.count()).select_from(Volume)
                              .where(Volume.status == "error")) == racers - sum(GIB_ROOM.values())


@pytest.fixture
def wide(db: Database) -> Iterator[Database]:
    """Two nodes with room enough for every volume the boots below make."""
    with db.session() as session:
        for name, room in (("node-a", 10), ("node-b", 12)):
            session.add(Node(name=name, state="up", vcpus=8, memory_mb=16384, local_gb=200,
                             inventory={"storage": {"free_gb": room, "total_gb": 100}}))
        session.add(VolumeType(id="t1", name="narrow-test"))
    yield db


def test_two_multi_server_boots_do_not_deadlock(wide: Database) -> None:
    """Review of 293b893: a create of count=2 servers attaches each server's volumes in
    one transaction (builds.py: attach_all per server). The second server's pick used to
    be waited for while the first's node lock was held; two such creates picking each
    other's nodes next deadlocked (PostgreSQL DeadlockDetected, a 409). Now a later
    server only tries the nodes it picks."""
    _postgres(wide)
    with wide.session() as session:
        ids = _nodes(session)
    first_placed, second_placed = threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def server(session: Session, project: str, size: int) -> Volume:
        creds = Credentials(user_id="u", project_id=project, roles=frozenset({"member"}))
        boot.lock_ahead(session, creds, [{"source": "blank", "uuid": None, "size": size,
                                          "boot_index": 0}])
        return _volume(session, size, project)

    def one() -> None:
        try:
            with wide.session() as session:
                session.execute(text("SET LOCAL lock_timeout = '8s'"))
                assert server(session, "p1", 1).node_name == "node-b"  # most room
                first_placed.set()
                assert second_placed.wait(30)
                server(session, "p1", 1)  # node-b now has less room than node-a
            outcome["one"] = "ok"
        except BaseException as err:  # noqa: BLE001 - reported below
            outcome["one"] = repr(err)[:300]

    def two() -> None:
        try:
            assert first_placed.wait(30)
            with wide.session() as session:  # committed meanwhile on node-b
                session.add(Volume(project_id="p3", user_id="u", size=5, volume_type_id="t1",
                                   status="available", meta={}, image_meta={}, exports={},
                                   node_id=ids["node-b"], node_name="node-b"))
            with wide.session() as session:
                session.execute(text("SET LOCAL lock_timeout = '8s'"))
                assert server(session, "p2", 5).node_name == "node-a"
                second_placed.set()
                time.sleep(0.3)  # the other create's second server picks node-a first
                server(session, "p2", 5)  # picks node-b, the other create holds it
            outcome["two"] = "ok"
        except BaseException as err:  # noqa: BLE001 - reported below
            outcome["two"] = repr(err)[:300]

    threads = [threading.Thread(target=one), threading.Thread(target=two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcome == {"one": "ok", "two": "ok"}
    placed = _placed(wide)
    assert sum(placed.values()) == 1 + 1 + 5 + 5 + 5
    assert placed["node-a"] <= 10 and placed["node-b"] <= 12


def test_giving_up_on_held_nodes_is_quick(vdb: Database) -> None:
    """Review of 293b893: a claim that may not wait and finds every node with room held
    tried for 10 s, holding its locks (in a boot the compute node's row, which that
    node's heartbeat then waits for, past ha_suspect_after 1.6 s)."""
    _postgres(vdb)
    with vdb.session() as racer:
        ids = _nodes(racer)
        placement.lock_nodes(racer, [ids["node-a"]])  # as a boot's first server
        with vdb.session() as third:
            placement.lock_nodes(third, [ids["node-b"]])
            assert _volume(racer, 3).node_name == "node-a"  # only node-a had room: full
            started = time.monotonic()
            vol = _volume(racer, 2)  # only node-b has room, and the third holds it
            spent = time.monotonic() - started
        assert vol.status == "error" and spent < 1.0, spent
    assert placement.CLAIM_WAIT <= 0.5


def test_a_lock_released_by_a_savepoint_rollback_is_not_trusted(vdb: Database) -> None:
    """Review of 293b893: PostgreSQL releases an advisory lock taken in a savepoint when
    the savepoint is rolled back; the claim trusted its note that the node was held and
    placed a volume there without the lock (another transaction held it)."""
    _postgres(vdb)
    with vdb.session() as racer:
        ids = _nodes(racer)
        nested = racer.begin_nested()
        placement.lock_nodes(racer, [ids["node-a"]])
        nested.rollback()
        with vdb.session() as other:
            assert placement.try_lock_node(other, ids["node-a"])  # released indeed
            started = time.monotonic()
            vol = _volume(racer, 1)  # node-a has the most room, but the other holds it
            assert vol.node_name == "node-b" and time.monotonic() - started < 1.0
