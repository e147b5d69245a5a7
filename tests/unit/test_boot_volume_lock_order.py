"""Boots from volume racing on nodes that are compute and storage nodes at once
(servers/builds.py, compute/server_volumes_boot.py, volume/placement.py).

A boot used to place its server first (its compute node's row locked by the claim) and
only then wait for the storage nodes' capacity locks of its new volumes; a create of two
servers waited for a compute row with a storage lock held. Two such boots could wait for
each other (PostgreSQL: a deadlock, the request a 409), and a later server of a request
gave up on a storage node another boot held after 0.25 s, leaving its volume in error (no
valid backend) and the server in ERROR although the node had room. Now the storage locks
come first (all the request's, in node id order), the compute rows after, and a try
rolled back for lock contention is tried again: every boot below is placed, never
overbooked, and a try that failed leaves nothing behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from atwill.config import Settings
from atwill.controller.compute.server_input import parse_create
from atwill.controller.db.compute import DEFAULT_RAM_RATIO
from atwill.controller.db.models import Flavor, Instance, Node
from atwill.controller.db.session import Database
from atwill.controller.db.volume import Volume
from atwill.controller.servers import builds, lifecycle
from atwill.controller.servers.locks import serialized
from atwill.controller.volume import placement
from atwill.core.microversion import Version
from atwill.core.policy import Credentials
from tests.unit import migrated_copies

NODE_RAM = 4096


SQLITE_SKIP = "SQLite has one writer: its boots never wait for each other's locks"


def _postgres(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip(SQLITE_SKIP)


@pytest.fixture(scope="module")
def template(engine: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[migrated_copies.MigratedTemplate]:
    """The module's database migrated once (PostgreSQL only: every test here skips on
    SQLite, now before any migration); each test gets a copy of it (migrated_copies)."""
    if engine != "postgres":
        pytest.skip(SQLITE_SKIP)
    yield from migrated_copies.migrated_template(engine, tmp_path_factory.mktemp("template"))


@pytest.fixture
def db(template: migrated_copies.MigratedTemplate, tmp_path: Path) -> Iterator[Database]:
    """A copy of the module's migrated database (was: a new one migrated per test)."""
    yield from template.copy(tmp_path)


def _cloud(db: Database, storage_gb: int, flavor_ram: int) -> Database:
    with db.session() as session:
        for name in ("node-a", "node-b"):
            session.add(Node(name=name, state="up", vcpus=64, memory_mb=NODE_RAM,
                             local_gb=100, inventory={"storage": {
                                 "free_gb": storage_gb, "total_gb": 100}}))
        session.add(Flavor(flavorid="bfv", name="bfv", ram=flavor_ram, vcpus=1, disk=0))
    return db


@pytest.fixture
def roomy(db: Database) -> Iterator[Database]:
    """Room for every server (8 a node) and every volume (8 GiB a node) asked below."""
    yield _cloud(db, storage_gb=8, flavor_ram=NODE_RAM // 8)


@pytest.fixture
def tight(db: Database) -> Iterator[Database]:
    """Two servers a node (RAM at the default ratio 1.5), room for every volume."""
    yield _cloud(db, storage_gb=20, flavor_ram=NODE_RAM * 3 // 4)


@pytest.fixture
def single(db: Database) -> Iterator[Database]:
    """One server a node, room for every volume."""
    yield _cloud(db, storage_gb=20, flavor_ram=NODE_RAM * 3 // 2)


def _spec(count: int, size: int = 1) -> dict[str, Any]:
    return parse_create({"server": {
        "name": "bfv", "flavorRef": "bfv", "networks": "none",
        "min_count": count, "max_count": count,
        "block_device_mapping_v2": [{"boot_index": 0, "source_type": "blank",
                                     "destination_type": "volume", "volume_size": size,
                                     "delete_on_termination": True}]}}, Version(2, 79))


def _boot(db: Database, project: str, count: int) -> list[str]:
    creds = Credentials(user_id="u", project_id=project, roles=frozenset({"member"}))
    ctl = SimpleNamespace(settings=Settings())
    with serialized(db.engine.dialect.name), db.session() as session:
        made = builds.create(session, ctl, creds, _spec(count), f"req-{project}")  # type: ignore[arg-type]
        return [inst.id for inst in made]


def _race(db: Database, counts: list[int]) -> tuple[dict[int, Any], float]:
    """Each create in a thread of its own, all at once: what each answered, how long."""
    barrier = threading.Barrier(len(counts))
    answers: dict[int, Any] = {}

    def run(index: int) -> None:
        try:
            barrier.wait(30)
            answers[index] = _boot(db, f"p{index}", counts[index])
        except BaseException as err:  # noqa: BLE001 - reported by the test
            answers[index] = repr(err)[:300]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(counts))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads)
    return answers, time.monotonic() - started


def _servers(session: Session) -> list[Instance]:
    return list(session.scalars(select(Instance)))


def _check_books(session: Session, storage_gb: int) -> None:
    """No overbooking: each node's counters are its live servers' sum, its volumes fit."""
    for node in session.scalars(select(Node)):
        live = [i for i in _servers(session) if i.node_id == node.id]
        assert node.memory_mb_used == sum(i.memory_mb for i in live) \
            <= node.memory_mb * float(DEFAULT_RAM_RATIO)
        assert node.vcpus_used == sum(i.vcpus for i in live)
        assert placement.allocated(session, node.id) <= storage_gb


def test_concurrent_boots_from_volume_on_compute_and_storage_nodes(roomy: Database) -> None:
    _postgres(roomy)
    counts = [2, 1, 2, 1, 2, 1, 2, 1]  # 12 servers, 12 GiB: all fit
    answers, spent = _race(roomy, counts)
    assert all(isinstance(a, list) for a in answers.values()), answers
    with roomy.session() as session:
        servers = _servers(session)
        assert len(servers) == sum(counts)
        assert [(s.vm_state, s.fault) for s in servers if s.vm_state != "building"] == []
        volumes = list(session.scalars(select(Volume)))
        assert len(volumes) == sum(counts)
        assert [(v.status, v.error) for v in volumes if v.status == "error"] == []
        _check_books(session, 8)
    assert spent < 30, spent


def test_boots_that_outnumber_the_compute_room_never_deadlock(tight: Database) -> None:
    _postgres(tight)
    counts = [2, 1, 2, 1, 2, 2]  # 10 servers asked, 4 fit
    answers, spent = _race(tight, counts)
    assert all(isinstance(a, list) for a in answers.values()), answers
    with tight.session() as session:
        servers = _servers(session)
        assert len(servers) == sum(counts)
        placed = [s for s in servers if s.vm_state == "building"]
        assert len(placed) == 4
        failed = [(s.fault or {}).get("message", "") for s in servers
                  if s.vm_state != "building"]
        assert all(m.startswith("No valid host was found.") for m in failed), failed
        boots = {v.id: v for v in session.scalars(select(Volume))}
        assert [v.status for v in boots.values() if v.status == "error"] == []
        _check_books(session, 20)
    assert spent < 30, spent


def test_a_try_rolled_back_for_contention_leaves_nothing(
        roomy: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first try of a count=2 create is ended in its second server's volume (as when
    every storage node with room stays held); the second try builds it all once."""
    _postgres(roomy)
    real = placement._claim
    calls = {"n": 0}

    def flaky(session: Session, size_gb: int) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise placement.Contended(placement.NO_BACKEND)
        return real(session, size_gb)

    monkeypatch.setattr(placement, "_claim", flaky)
    made = _boot(roomy, "p1", 2)
    assert calls["n"] == 4 and len(made) == 2
    with roomy.session() as session:
        servers = _servers(session)
        assert sorted(s.id for s in servers) == sorted(made)
        assert all(s.vm_state == "building" and s.node_id for s in servers)
        assert session.scalar(select(func.count()).select_from(Volume)) == 2
        _check_books(session, 8)


def test_a_lack_of_room_is_not_retried(roomy: Database,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Room for none of the volumes: answered at once, as before (the volume in error, no
    valid backend; the server in ERROR), never tried again."""
    _postgres(roomy)
    tries = {"n": 0}
    real = builds._create

    def counted(*args: Any) -> Any:
        tries["n"] += 1
        return real(*args)

    monkeypatch.setattr(builds, "_create", counted)
    creds = Credentials(user_id="u", project_id="p1", roles=frozenset({"member"}))
    with roomy.session() as session:
        made = builds.create(session, SimpleNamespace(settings=Settings()),  # type: ignore[arg-type]
                             creds, _spec(1, size=9), "req-full")
        assert made[0].vm_state == "error"
    assert tries["n"] == 1
    with roomy.session() as session:
        vol = session.scalar(select(Volume))
        assert vol is not None and vol.status == "error" and vol.error == placement.NO_BACKEND
        _check_books(session, 8)


def test_every_try_contended_answers_as_before(roomy: Database,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A boot whose every try finds the storage nodes held: BUILD_ATTEMPTS tries, then the
    last one answers as Cinder's scheduler (no valid backend, the server in ERROR), and
    only that try's rows remain."""
    _postgres(roomy)
    monkeypatch.setattr(builds, "BUILD_BACKOFF", (0.0, 0.0))
    real = placement._claim
    calls = {"n": 0}

    def held(session: Session, size_gb: int) -> Any:
        calls["n"] += 1
        placement._contended(session)  # raises unless it is the last try
        return None

    monkeypatch.setattr(placement, "_claim", held)
    made = _boot(roomy, "p1", 1)
    assert calls["n"] == builds.BUILD_ATTEMPTS and real is not held
    with roomy.session() as session:
        servers = _servers(session)
        assert [s.id for s in servers] == made and servers[0].vm_state == "error"
        vols = list(session.scalars(select(Volume)))
        assert len(vols) == 1 and vols[0].error == placement.NO_BACKEND
        _check_books(session, 8)


def test_a_boot_holding_a_compute_row_does_not_wait_for_a_storage_lock(
        single: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """B creates two servers, A one, on two nodes that each take one server. B's first
    server is placed and its volume's storage node locked; then A's server takes the
    other compute node, and B's second server waits for that node's row. A used to wait
    for the storage node B holds with its compute row held: a deadlock (PostgreSQL ended
    one of them, a 409). Now A takes its storage lock before any compute row (it waits
    for B to commit) and B's second server gets the node; A's finds no room, as Nova."""
    _postgres(single)
    real = lifecycle.schedule
    b_second, a_scheduled = threading.Event(), threading.Event()
    calls = {"B": 0}

    def schedule(*args: Any, **kwargs: Any) -> bool:
        who = threading.current_thread().name
        if who == "B":
            calls["B"] += 1
            if calls["B"] == 2:
                b_second.set()
                a_scheduled.wait(2)  # never comes when A waits for B's storage lock
        placed = real(*args, **kwargs)
        if who == "A":
            a_scheduled.set()
        return placed

    monkeypatch.setattr(lifecycle, "schedule", schedule)
    answers: dict[str, Any] = {}

    def run(who: str, count: int) -> None:
        try:
            if who == "A":
                assert b_second.wait(30)
            answers[who] = _boot(single, f"p{who}", count)
        except BaseException as err:  # noqa: BLE001 - reported below
            answers[who] = repr(err)[:300]

    threads = [threading.Thread(target=run, args=(w, c), name=w) for w, c in (("B", 2),
                                                                               ("A", 1))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(isinstance(a, list) for a in answers.values()) and len(answers) == 2, answers
    assert time.monotonic() - started < 15
    with single.session() as session:
        servers = _servers(session)
        assert sorted(s.vm_state for s in servers) == ["building", "building", "error"]
        _check_books(session, 20)


def test_a_later_server_waits_for_a_held_storage_node_rather_than_fail(
        roomy: Database) -> None:
    """A create of two servers whose second volume only fits a node a plain volume create
    holds for a second. Its second server used to give up after 0.25 s (the volume in
    error, no valid backend, the server in ERROR) with room there; now both servers'
    nodes are locked ahead, waited for, and both servers are built."""
    _postgres(roomy)
    with roomy.session() as session:
        ids = dict(session.execute(select(Node.name, Node.id)).all())
        for name, room in (("node-a", 2), ("node-b", 3)):
            session.get(Node, ids[name]).inventory = {"storage": {"free_gb": room,
                                                                   "total_gb": 100}}
    held, answers = threading.Event(), {}

    def holder() -> None:  # e.g. an extend on node-a, open for a second
        with roomy.session() as session:
            placement.lock_nodes(session, [ids["node-a"]])
            held.set()
            time.sleep(1.0)

    def run() -> None:
        assert held.wait(30)
        creds = Credentials(user_id="u", project_id="p1", roles=frozenset({"member"}))
        with roomy.session() as session:
            made = builds.create(session, SimpleNamespace(settings=Settings()),  # type: ignore[arg-type]
                                 creds, _spec(2, size=2), "req-two")
            answers["made"] = [i.id for i in made]

    threads = [threading.Thread(target=holder), threading.Thread(target=run)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers.get("made", [])) == 2
    with roomy.session() as session:
        servers = _servers(session)
        assert [(s.vm_state, s.fault) for s in servers if s.vm_state != "building"] == []
        vols = list(session.scalars(select(Volume)))
        assert sorted(v.node_id for v in vols) == sorted(ids.values())
        assert [v.error for v in vols if v.status == "error"] == []
        _check_books(session, 3)


class _Victim(Exception):
    sqlstate = "40P01"  # what psycopg's DeadlockDetected carries


def test_a_deadlock_victim_is_tried_again(roomy: Database,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A try the database ended as a deadlock's victim (its transaction aborted) is rolled
    back to its savepoint and tried again: the create succeeds, once, nothing doubled."""
    _postgres(roomy)
    real = lifecycle.schedule
    calls = {"n": 0}

    def schedule(session: Session, *args: Any, **kwargs: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 2:  # the second server of the first try
            with pytest.raises(DBAPIError):
                session.execute(text("SELECT 1 / 0"))  # aborts the transaction as one would
            raise OperationalError("SELECT ...", {}, _Victim("deadlock detected"))
        return real(session, *args, **kwargs)

    monkeypatch.setattr(lifecycle, "schedule", schedule)
    made = _boot(roomy, "p1", 2)
    assert calls["n"] == 4 and len(made) == 2
    with roomy.session() as session:
        assert sorted(s.id for s in _servers(session)) == sorted(made)
        assert session.scalar(select(func.count()).select_from(Volume)) == 2
        _check_books(session, 8)


def test_a_deadlock_on_the_last_try_is_answered(roomy: Database,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Every try a deadlock's victim: the last one's error goes up (the API's 409), after
    BUILD_ATTEMPTS tries, and the transaction leaves nothing."""
    _postgres(roomy)
    monkeypatch.setattr(builds, "BUILD_BACKOFF", (0.0, 0.0))
    calls = {"n": 0}

    def schedule(*_args: Any, **_kwargs: Any) -> bool:
        calls["n"] += 1
        raise OperationalError("SELECT ...", {}, _Victim("deadlock detected"))

    monkeypatch.setattr(lifecycle, "schedule", schedule)
    with pytest.raises(OperationalError):
        _boot(roomy, "p1", 1)
    assert calls["n"] == builds.BUILD_ATTEMPTS
    with roomy.session() as session:
        assert _servers(session) == []
        assert session.scalar(select(func.count()).select_from(Volume)) == 0
        _check_books(session, 8)
