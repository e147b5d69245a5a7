"""Agents' wake-ups across savepoints (controller/savepoint_info.py).

SQLAlchemy runs after_rollback, before_commit and after_commit for a savepoint too. The
revision bump, the long-poll signal and node_scope's tracking of changed rows once took
those for the whole transaction's: a savepoint rolled back dropped the bumps made before
it (a create of two servers whose second one's claim savepoint failed left the first
one's node unaware of it), and one released moved the clock and woke the agents before
the transaction committed. Now they act on the outermost transaction only, and a
savepoint rolled back takes back what was pending when it opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from atwill.controller import node_scope, revision_signal, savepoint_info
from atwill.controller.db.models import ClusterRevision, Network, Node, NodeRevision, Port
from atwill.controller.db.session import Database, immediate
from atwill.controller.revision import CONCERN, bump, node_revision, revision
from tests.unit.conftest import migrated_database


@pytest.fixture(scope="module")
def sdb(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    yield from migrated_database(engine, tmp_path_factory.mktemp("savepoints"))


@pytest.fixture
def nodes(sdb: Database) -> Iterator[dict[str, str]]:
    """Nodes a, b, c (name -> id), gone afterwards with every row the test made."""
    made = {k: Node(name=f"sp-{k}") for k in "abc"}
    with sdb.session() as session:
        session.add_all(made.values())
    yield {k: n.id for k, n in made.items()}
    with sdb.session() as session:
        for table in (Port, Network, NodeRevision, Node, ClusterRevision):
            session.execute(delete(table))


@contextmanager
def transaction(db: Database) -> Iterator[Session]:
    """A session whose transaction has begun: pysqlite begins one only before a write, and
    a SAVEPOINT outside one begins one in SQLite that its RELEASE commits."""
    with immediate(), db.session() as session:
        yield session


def revs(db: Database, ids: dict[str, str]) -> dict[str, int]:
    with db.session() as session:
        return {k: node_revision(session, v) for k, v in ids.items()}


def _refused(session: Session, nodes: set[str]) -> None:
    """A savepoint that bumps these nodes and is rolled back (as a failed claim's)."""
    with pytest.raises(RuntimeError), session.begin_nested():
        bump(session, nodes=nodes)
        raise RuntimeError("claim refused")


def test_a_bump_before_a_rolled_back_savepoint_still_moves_and_wakes_its_node(
        sdb: Database, nodes: dict[str, str], woken: list[set[str] | None]) -> None:
    before = revs(sdb, nodes)
    with transaction(sdb) as session:
        bump(session, nodes={nodes["a"]})  # server 1 placed on a
        _refused(session, {nodes["b"]})  # server 2's claim on b rolled back
        bump(session, nodes={nodes["c"]})  # server 2 placed on c instead
    after = revs(sdb, nodes)
    assert after["a"] > before["a"] and after["c"] > before["c"]
    assert after["b"] == before["b"]
    assert woken == [{nodes["a"], nodes["c"]}]


def test_a_rolled_back_savepoint_keeps_an_earlier_bump_for_every_node(
        sdb: Database, nodes: dict[str, str], woken: list[set[str] | None]) -> None:
    with transaction(sdb) as session:
        clock = revision(session)
        bump(session)
        _refused(session, {nodes["b"]})
    assert set(revs(sdb, nodes).values()) == {clock + 1}
    assert woken == [None]


def test_nested_savepoints_roll_back_to_what_each_one_opened_with(
        sdb: Database, nodes: dict[str, str], woken: list[set[str] | None]) -> None:
    before = revs(sdb, nodes)
    with transaction(sdb) as session:
        with session.begin_nested():
            bump(session, nodes={nodes["a"]})
            _refused(session, {nodes["b"]})
        with pytest.raises(RuntimeError), session.begin_nested():
            bump(session, nodes={nodes["c"]})
            with session.begin_nested():
                bump(session, nodes={nodes["b"]})
            raise RuntimeError("refused after an inner savepoint was released")
    after = revs(sdb, nodes)
    assert after["a"] > before["a"]
    assert after["b"] == before["b"] and after["c"] == before["c"]
    assert woken == [{nodes["a"]}]


def test_a_released_savepoint_moves_and_wakes_nothing_before_the_commit(
        sdb: Database, nodes: dict[str, str], woken: list[set[str] | None]) -> None:
    with transaction(sdb) as session:
        clock = revision(session)
        bump(session, nodes={nodes["a"]})
        with session.begin_nested():
            bump(session, nodes={nodes["b"]})
        assert woken == []  # the savepoint released: nothing is committed yet
        assert session.info[CONCERN] == {nodes["a"], nodes["b"]}
        assert revision(session) == clock
    assert woken == [{nodes["a"], nodes["b"]}]
    after = revs(sdb, nodes)
    assert after["a"] == after["b"] == clock + 1


def test_a_full_rollback_still_drops_every_bump(
        sdb: Database, nodes: dict[str, str], woken: list[set[str] | None]) -> None:
    before = revs(sdb, nodes)
    with pytest.raises(RuntimeError), transaction(sdb) as session:
        bump(session, nodes={nodes["a"]})
        with session.begin_nested():
            bump(session, nodes={nodes["b"]})
        _refused(session, {nodes["c"]})
        raise RuntimeError("refused")
    assert revs(sdb, nodes) == before
    assert woken == []
    # Nothing left over for the session's next transaction.
    assert not {CONCERN, revision_signal.MARK, node_scope.TRACK, savepoint_info.OPENED} \
        & set(session.info)
    with sdb.session() as session:
        bump(session, nodes={nodes["c"]})
    after = revs(sdb, nodes)
    assert after["c"] > before["c"] and after["a"] == before["a"] == after["b"]
    assert woken == [{nodes["c"]}]


def test_rows_changed_before_a_rolled_back_savepoint_still_name_their_nodes(
        sdb: Database, nodes: dict[str, str], woken: list[set[str] | None]) -> None:
    """node_scope's tracking: the port moved to a before the savepoint still concerns a;
    the one moved to b inside it, rolled back, concerns nobody."""
    with sdb.session() as session:
        net = Network(mtu=1450)
        session.add(net)
        session.flush()
        ports = [Port(network_id=net.id, mac_address=f"fa:16:3e:00:01:0{i}", host_id="")
                 for i in range(2)]
        session.add_all(ports)
    before = revs(sdb, nodes)
    with transaction(sdb) as session:
        first, second = (session.get(Port, p.id) for p in ports)
        first.host_id = "sp-a"
        session.flush()
        with pytest.raises(RuntimeError), session.begin_nested():
            second.host_id = "sp-b"
            session.flush()
            raise RuntimeError("binding refused")
        bump(session, touched=True)
    after = revs(sdb, nodes)
    assert after["a"] > before["a"]
    assert after["b"] == before["b"] == after["c"]
    assert woken == [{nodes["a"]}]
