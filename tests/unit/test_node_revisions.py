"""Per-node revisions: a change moves, and wakes, only the nodes it concerns."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from atwill.controller import revision_signal
from atwill.controller.cluster.agents import MovedNodes
from atwill.controller.db.models import (
    ClusterRevision,
    Flavor,
    Instance,
    Network,
    Node,
    NodeRevision,
    Port,
    PortSecurityGroup,
    SecurityGroup,
    SecurityGroupRule,
)
from atwill.controller.db.session import Database, migrate
from atwill.controller.revision import bump, changes_since, node_revision, revision
from tests.conftest import fresh_database_url
from tests.unit.conftest import migrated_database


@pytest.fixture(scope="module")
def rdb(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    yield from migrated_database(engine, tmp_path_factory.mktemp("revisions"))


@pytest.fixture
def nodes(rdb: Database) -> Iterator[dict[str, str]]:
    """Three nodes a, b, c (name -> id); every row the test made is gone afterwards."""
    made = {k: Node(name=f"rev-{k}") for k in "abc"}
    with rdb.session() as session:
        session.add_all(made.values())
    ids = {k: n.id for k, n in made.items()}
    yield ids
    with rdb.session() as session:
        for table in (PortSecurityGroup, SecurityGroupRule, Port, SecurityGroup, Network,
                      Instance, NodeRevision, Node):
            session.execute(delete(table))
        session.execute(delete(ClusterRevision))
        session.execute(delete(Flavor).where(Flavor.name == "rev-x"))


def revs(db: Database, ids: dict[str, str]) -> dict[str, int]:
    with db.session() as session:
        return {k: node_revision(session, v) for k, v in ids.items()}


def test_a_change_for_one_node_moves_it_alone_and_one_for_all_moves_all(
        rdb: Database, nodes: dict[str, str]) -> None:
    before = revs(rdb, nodes)
    with rdb.session() as session:
        bump(session, nodes={nodes["a"]})
    after = revs(rdb, nodes)
    assert after["a"] > before["a"] and after["b"] == before["b"] == after["c"]
    with rdb.session() as session:
        clock = revision(session)
        bump(session)
    everyone = revs(rdb, nodes)
    assert set(everyone.values()) == {clock + 1}  # one number space: the clock's


def test_a_rolled_back_bump_moves_nothing(rdb: Database, nodes: dict[str, str]) -> None:
    before = revs(rdb, nodes)
    with pytest.raises(RuntimeError), rdb.session() as session:
        bump(session, nodes={nodes["a"]})
        raise RuntimeError("refused")
    assert revs(rdb, nodes) == before


def test_the_commit_wakes_the_long_polls_of_the_nodes_concerned_only(
        rdb: Database, nodes: dict[str, str]) -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        wake_a = revision_signal.changed.subscribe(nodes["a"])
        wake_b = revision_signal.changed.subscribe(nodes["b"])
        wake_any = revision_signal.changed.subscribe()

        def change() -> None:
            with rdb.session() as session:
                bump(session, nodes={nodes["a"]})

        await asyncio.to_thread(change)
        await asyncio.sleep(0.05)
        woken = wake_a.is_set(), wake_b.is_set(), wake_any.is_set()
        for wakeup in (wake_a, wake_b, wake_any):
            revision_signal.changed.unsubscribe(wakeup)
        return woken

    assert asyncio.run(scenario()) == (True, False, True)
    assert revision_signal.changed.waiting() == 0


def _network_with_ports(rdb: Database, nodes: dict[str, str]) -> tuple[str, str]:
    """A network with ports bound to a and b (in one group), none on c."""
    with rdb.session() as session:
        net, group = Network(mtu=1450), SecurityGroup(name="g")
        session.add_all([net, group])
        session.flush()
        for i, key in enumerate("ab"):
            port = Port(network_id=net.id, mac_address=f"fa:16:3e:00:00:0{i}",
                        host_id=f"rev-{key}", device_owner="compute:nova")
            session.add(port)
            session.flush()
            session.add(PortSecurityGroup(port_id=port.id, security_group_id=group.id))
        return net.id, group.id


def test_a_network_change_concerns_every_node_with_a_port_on_it(
        rdb: Database, nodes: dict[str, str]) -> None:
    net_id, group_id = _network_with_ports(rdb, nodes)
    before = revs(rdb, nodes)
    with rdb.session() as session:
        session.get(Network, net_id).mtu = 1400
        bump(session, touched=True)
    moved = revs(rdb, nodes)
    assert moved["a"] > before["a"] and moved["b"] > before["b"]
    assert moved["c"] == before["c"]
    # A rule of the group its ports are in: the same nodes.
    with rdb.session() as session:
        session.add(SecurityGroupRule(security_group_id=group_id, direction="ingress",
                                      ethertype="IPv4"))
        bump(session, touched=True)
    again = revs(rdb, nodes)
    assert again["a"] > moved["a"] and again["b"] > moved["b"] and again["c"] == before["c"]


def test_a_port_moved_off_a_node_concerns_it_and_the_other_ports_nodes(
        rdb: Database, nodes: dict[str, str]) -> None:
    net_id, _ = _network_with_ports(rdb, nodes)
    before = revs(rdb, nodes)
    with rdb.session() as session:
        port = session.query(Port).filter_by(host_id="rev-a").one()
        port.host_id = "rev-c"  # a, which had it, and c, which gets it, and b (remote)
        bump(session, nodes=set())
    assert all(v > before[k] for k, v in revs(rdb, nodes).items())


def test_a_new_port_with_its_defaults_unset_concerns_its_node(
        rdb: Database, nodes: dict[str, str]) -> None:
    with rdb.session() as session:
        net = Network(mtu=1450)
        session.add(net)
    before = revs(rdb, nodes)
    with rdb.session() as session:
        session.add(Port(network_id=net.id, mac_address="fa:16:3e:00:00:09", host_id="rev-b"))
        bump(session, touched=True)
    after = revs(rdb, nodes)
    assert after["b"] > before["b"] and after["a"] == before["a"] == after["c"]


def test_rows_a_network_change_cannot_place_concern_every_node(
        rdb: Database, nodes: dict[str, str]) -> None:
    before = revs(rdb, nodes)
    with rdb.session() as session:
        session.add(Flavor(flavorid="rev-x", name="rev-x", ram=1, vcpus=1))
        bump(session, touched=True)
    assert all(v > before[k] for k, v in revs(rdb, nodes).items())


def test_a_server_change_concerns_its_node_and_a_move_every_node(
        rdb: Database, nodes: dict[str, str]) -> None:
    with rdb.session() as session:
        inst = Instance(name="s", project_id="p", user_id="u", vcpus=1, memory_mb=1,
                        disk_gb=1, node_id=nodes["a"], node_name="rev-a")
        session.add(inst)
    before = revs(rdb, nodes)
    with rdb.session() as session:
        inst = session.get(Instance, inst.id)
        bump(session, of=inst, action="os-stop")
    stopped = revs(rdb, nodes)
    assert stopped["a"] > before["a"] and stopped["b"] == before["b"] == stopped["c"]
    with rdb.session() as session:
        bump(session, of=session.get(Instance, inst.id), action="os-migrateLive")
    moved = revs(rdb, nodes)
    assert all(v > stopped[k] for k, v in moved.items())
    # Deleted: its resources given back (no node any more), the node that had it
    # destroys it, and no other node hears of it.
    with rdb.session() as session:
        inst = session.get(Instance, inst.id)
        inst.node_id, inst.deleted = None, True
        bump(session, of=inst)
    deleted = revs(rdb, nodes)
    assert deleted["a"] > moved["a"] and deleted["b"] == moved["b"] == deleted["c"]


def test_another_worker_resolves_what_moved_since_the_clock_it_saw(
        rdb: Database, nodes: dict[str, str], tmp_path: Path) -> None:
    """What a worker (or a controller restarted on the same database) learns from the
    database alone: the nodes moved since the clock it last saw."""
    class Ctl:
        db = Database(rdb.url)

    try:
        moved = MovedNodes(Ctl)  # type: ignore[arg-type]
        assert moved() == set()
        with rdb.session() as session:
            bump(session, nodes={nodes["b"]})
        assert moved() == {nodes["b"]} and moved() == set()
        with rdb.session() as session:
            bump(session)
        assert moved() is None  # every node
        with Ctl.db.session() as session:
            clock, _ = changes_since(session, 0)
            assert changes_since(session, clock) == (clock, set())
    finally:
        Ctl.db.dispose()


def test_an_agent_of_the_previous_release_keeps_its_revision_across_the_upgrade(
        engine: str, tmp_path: Path) -> None:
    """Migration 0025 starts every node at the global revision an old agent last saw."""
    from alembic import command

    from atwill.controller.db.session import alembic_config

    for url in fresh_database_url(engine):
        db = Database(url or f"sqlite:///{tmp_path / 'old.db'}")
        try:
            cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
            with db.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "0024")
                conn.exec_driver_sql("INSERT INTO cluster_revision (id, revision) "
                                     "VALUES (1, 41)")
            migrate(db.engine)
            with db.session() as session:
                assert node_revision(session, "any-node") == 41 == revision(session)
            with db.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, "0024")
            with db.engine.connect() as conn:
                row = conn.exec_driver_sql("SELECT * FROM cluster_revision").one()
            assert tuple(row) == (1, 41)
        finally:
            db.dispose()


def test_a_notify_reaches_waiters_on_another_thread_by_node() -> None:
    signal = revision_signal.RevisionSignal()

    async def scenario() -> tuple[bool, bool]:
        mine, other = signal.subscribe("n1"), signal.subscribe("n2")
        threading.Timer(0.02, signal.notify, args=({"n1"},)).start()
        await signal.wait(mine, 5.0)
        woke = mine.is_set(), other.is_set()
        signal.unsubscribe(other)
        return woke

    assert asyncio.run(scenario()) == (True, False)
    assert signal.waiting() == 0


def test_a_follower_wakes_only_the_nodes_another_worker_moved(tmp_path: Path) -> None:
    from atwill.controller.worker_stamp import WorkerStamp

    path = tmp_path / "revision.stamp"
    asked: list[int] = []

    def resolver() -> set[str]:
        asked.append(1)
        return {"n1"}

    async def scenario() -> tuple[bool, bool]:
        revision_signal.share(path)
        revision_signal.watch(path, lambda: resolver)
        follower = asyncio.create_task(revision_signal.follow(path))
        mine = revision_signal.changed.subscribe("n1")
        other = revision_signal.changed.subscribe("n2")
        WorkerStamp(path).touch()  # as another worker's commit does
        await revision_signal.changed.wait(mine, 5.0)
        woke = mine.is_set(), other.is_set()
        revision_signal.changed.unsubscribe(other)
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        return woke

    assert asyncio.run(scenario()) == (True, False)
    assert asked and not revision_signal.watched(path)
