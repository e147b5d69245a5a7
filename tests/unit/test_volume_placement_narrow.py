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
from atwill.controller.db.session import Database, migrate
from atwill.controller.db.volume import Volume, VolumeType
from atwill.controller.volume import placement
from atwill.core.policy import Credentials
from atwill.core.volume_placement import Backend, pick

GIB_ROOM = {"node-a": 3, "node-b": 2}


@pytest.fixture
def vdb(db: Database) -> Iterator[Database]:
    migrate(db.engine)
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
