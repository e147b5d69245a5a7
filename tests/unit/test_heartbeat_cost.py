"""A steady heartbeat costs the same statements whatever the fleet's size, and writes
one row: the node's own (issue 19, cost that does not grow with the fleet)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import event

from atwill.api.cluster import Heartbeat
from atwill.config import Settings
from atwill.controller.cluster import agents
from atwill.controller.context import Controller
from atwill.controller.db.models import Base, Instance, Node
from atwill.controller.db.session import Database

INVENTORY = {"vcpus": 8, "memory_mb": 16384, "disk_gb": 100}


@pytest.fixture
def ctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Controller]:
    state = tmp_path / "state"
    state.mkdir()
    db = Database(f"sqlite:///{tmp_path / 'beat.db'}")
    Base.metadata.create_all(db.engine)
    # The node is the caller; its certificate check is another test's concern.
    monkeypatch.setattr(agents, "calling_node",
                        lambda session, request, node_id: session.get(Node, node_id))
    yield Controller(settings=Settings(state_dir=state), db=db, keys=None)  # type: ignore[arg-type]
    db.dispose()


def _fleet(ctl: Controller, size: int) -> str:
    with ctl.db.session() as session:
        nodes = [Node(name=f"n{i}", state="up") for i in range(size)]
        session.add_all(nodes)
        session.flush()
        me = nodes[0]
        session.add_all(Instance(name=f"vm{i}", project_id="p", user_id="u", vcpus=1,
                                 memory_mb=64, disk_gb=1, node_id=me.id, node_name=me.name,
                                 vm_state="active") for i in range(3))
        return me.id


def _beat(ctl: Controller, node_id: str) -> tuple[list[str], int]:
    """The statements one steady heartbeat ran, and its body's size in bytes."""
    with ctl.db.session() as session:
        ids = [i.id for i in session.query(Instance).filter(Instance.node_id == node_id)]
        # A beat a second ago: this one must record its own time.
        session.get(Node, node_id).last_heartbeat -= dt.timedelta(seconds=1)
    body = {"overlay": {"up": True}, "running_vms": 3, "host": {"uptime_s": 5},
            "instances": {i: {"state": "running"} for i in ids}}
    statements: list[str] = []

    def seen(conn, cursor, statement, *rest) -> None:  # noqa: ANN001
        statements.append(statement)
    event.listen(ctl.db.engine, "before_cursor_execute", seen)
    try:
        agents._heartbeat(ctl, SimpleNamespace(client=None), node_id, Heartbeat(**body))
    finally:
        event.remove(ctl.db.engine, "before_cursor_execute", seen)
    return statements, len(json.dumps(body))


@pytest.mark.parametrize("fleet", [5, 400])
def test_steady_heartbeat_writes_one_row_whatever_the_fleet(ctl: Controller,
                                                            fleet: int) -> None:
    node_id = _fleet(ctl, fleet)
    first = Heartbeat(inventory=INVENTORY, overlay={}, running_vms=0)
    agents._heartbeat(ctl, SimpleNamespace(client=None), node_id, first)
    _beat(ctl, node_id)
    statements, size = _beat(ctl, node_id)
    writes = [s.split()[:2] for s in statements
              if s.split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]
    assert writes == [["UPDATE", "nodes"]], statements
    # Reads are a handful, never one per node of the fleet.
    assert len(statements) <= 12, statements
    assert size < 400
