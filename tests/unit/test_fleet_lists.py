"""The fleet-wide peers list shared between nodes' builds (cluster/fleet_lists.py) gives
each node what building its list alone gives, follows joins, removals and endpoint
changes (each bumps every node), and a long-poll that saw no change builds nothing
(cluster/agents._current), a controller's restart included."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atwill.config import Settings
from atwill.controller.cluster import agents, fleet_lists, nodes
from atwill.controller.cluster.desired import desired_state
from atwill.controller.context import Controller
from atwill.controller.db.models import Base, ClusterRevision, Node
from atwill.controller.db.session import Database
from atwill.controller.ha.lease import desired_block
from atwill.controller.revision import bump, node_revision
from atwill.core import overlay_peers, peer_view

CIDR = "10.99.0.0/16"


def _key(i: int) -> str:
    return base64.b64encode(bytes([i]) * 32).decode()


@pytest.fixture
def ctl(tmp_path: Path) -> Iterator[Controller]:
    db = Database(f"sqlite:///{tmp_path / 'fleet.db'}")
    Base.metadata.create_all(db.engine)
    fleet_lists.clear()
    made = Controller(settings=Settings(state_dir=tmp_path, overlay_cidr=CIDR),  # type: ignore[arg-type]
                      db=db, keys=None)  # type: ignore[arg-type]
    with db.session() as session:
        session.add(ClusterRevision(id=1, revision=1, everyone_at=1))
        for i in range(6):
            session.add(_node(i))
    yield made
    fleet_lists.clear()
    db.dispose()


def _node(i: int, key: int | None = None, **fields: Any) -> Node:
    return Node(**{"id": f"n{i}", "name": f"node{i}", "overlay_ip": f"10.99.1.{i + 10}",
                   "wireguard_public_key": _key(i if key is None else key),
                   "endpoint_host": f"192.0.2.{i + 1}", **fields})


def _peers(ctl: Controller, node_id: str) -> list[dict[str, Any]]:
    with ctl.db.session() as session:
        return desired_state(session, ctl, session.get(Node, node_id))["overlay"]["peers"]


def _alone(ctl: Controller, node_id: str) -> list[dict[str, Any]]:
    """What building node_id's list alone gives (as desired.py did before sharing)."""
    with ctl.db.session() as session:
        rows = session.query(Node).filter(Node.id != node_id).order_by(Node.name)
        listed = [{"name": n.name, "public_key": n.wireguard_public_key,
                   "overlay_ip": n.overlay_ip, "keepalive": 25,
                   "endpoint": f"{n.endpoint_host}:{n.overlay_port}"
                   if n.endpoint_host else None} for n in rows if n.overlay_ip is not None]
    return overlay_peers.node_peers(listed, [], CIDR)


def test_each_node_s_list_is_the_one_built_for_it_alone(ctl: Controller) -> None:
    with ctl.db.session() as session:
        session.add(_node(6, key=2))  # node6 claims node2's key: hidden while node2 is there
        session.add(_node(7, overlay_ip=None))  # no overlay address: nobody's peer
        session.add(_node(8, overlay_ip="10.99.0.1"))  # a controller slot: dropped
        session.add(_node(9, endpoint_host=None))  # no endpoint: it dials out
    for i in range(10):
        assert _peers(ctl, f"n{i}") == _alone(ctl, f"n{i}"), i
    names = {p["name"] for p in _peers(ctl, "n2")}
    assert "node6" in names and "node2" not in names  # node2 itself hid node6 from others
    assert "node6" not in {p["name"] for p in _peers(ctl, "n0")}
    assert "node8" not in names and "node7" not in names
    assert {p["name"]: p["endpoint"] for p in _peers(ctl, "n0")}["node9"] is None


def test_a_join_a_removal_and_a_new_endpoint_reach_every_node(ctl: Controller) -> None:
    assert "node6" not in {p["name"] for p in _peers(ctl, "n0")}  # the shared list kept
    with ctl.db.session() as session:
        session.add(_node(6))
        bump(session)  # as nodes.join does
    assert all("node6" in {p["name"] for p in _peers(ctl, f"n{i}")} for i in range(6))
    with ctl.db.session() as session:
        nodes.forget(session, session.get(Node, "n3"))
    assert all("node3" not in {p["name"] for p in _peers(ctl, f"n{i}")} for i in (0, 1, 6))
    with ctl.db.session() as session:
        node = session.get(Node, "n1")
        nodes.heartbeat(session, node, None, {}, 0, "198.51.100.7", {})
    assert {p["name"]: p["endpoint"] for p in _peers(ctl, "n0")}["node1"] \
        == "198.51.100.7:51820"
    for i in (0, 1, 2, 4, 5, 6):
        assert _peers(ctl, f"n{i}") == _alone(ctl, f"n{i}")


def test_a_row_written_without_a_bump_still_reaches_the_list(ctl: Controller) -> None:
    _peers(ctl, "n0")
    with ctl.db.session() as session:
        session.add(_node(6))
    assert "node6" in {p["name"] for p in _peers(ctl, "n0")}


class _Unbuildable:
    def __call__(self, *args: object) -> dict:
        raise AssertionError("a long-poll that saw no change built the desired state")


def test_an_unchanged_long_poll_builds_nothing_even_after_a_restart(
        ctl: Controller, monkeypatch: pytest.MonkeyPatch) -> None:
    with ctl.db.session() as session:
        rev = node_revision(session, "n0")
    monkeypatch.setattr(agents, "_snapshots", agents.Snapshots())  # a restarted controller
    monkeypatch.setattr(agents, "calling_node", lambda session, request, node_id:
                        session.get(Node, node_id))
    monkeypatch.setattr(agents, "desired_state", _Unbuildable())
    assert agents._current(ctl, None, "n0", rev) == {  # type: ignore[arg-type]
        "revision": rev, "unchanged": True}
    monkeypatch.setattr(agents, "desired_state", desired_state)
    for after in (-1, rev - 1):  # an agent without its state, or with an older one
        state = agents._current(ctl, None, "n0", after)  # type: ignore[arg-type]
        assert state["revision"] == rev and state["node_id"] == "n0"
        assert "unchanged" not in state and state["overlay"]["peers"]


def _probes_alone(ctl: Controller, node_id: str) -> list[dict[str, Any]]:
    """The HA block's probe peers read for node_id alone (ha/lease without the list)."""
    with ctl.db.session() as session:
        return desired_block(session, ctl, session.get(Node, node_id))["peers"]


def test_each_node_s_probe_peers_are_the_ones_read_for_it_alone(ctl: Controller) -> None:
    with ctl.db.session() as session:
        for i in range(6, 23):  # past the probe set's size: ring neighbours, not everyone
            session.add(_node(i))
        session.add(_node(23, overlay_ip=None))  # no overlay address: probes, is not probed
        bump(session)
    for i in range(24):
        with ctl.db.session() as session:
            state = desired_state(session, ctl, session.get(Node, f"n{i}"))
        assert state["ha"]["peers"] == _probes_alone(ctl, f"n{i}"), i
        assert len(state["ha"]["peers"]) == peer_view.PROBES, i
    with ctl.db.session() as session:  # a removal reaches the ring (it bumps every node)
        nodes.forget(session, session.get(Node, "n5"))
    for i in (0, 4, 6, 23):
        with ctl.db.session() as session:
            state = desired_state(session, ctl, session.get(Node, f"n{i}"))
        assert state["ha"]["peers"] == _probes_alone(ctl, f"n{i}"), i
        assert "n5" not in {p["id"] for p in state["ha"]["peers"]}


@pytest.mark.parametrize("size", [0, 1, 2, 5, 8, 9, 10, 17, 40])
def test_the_ring_s_probe_set_is_peer_view_s(size: int) -> None:
    ids = [f"x{i:03}" for i in range(size)]
    fleet = fleet_lists.Fleet(key=(), entries={i: {"overlay_ip": f"ip-{i}"} for i in ids},
                              kept=[], keys=Counter(), raw=[], ring=tuple(sorted(ids)))
    for me in [*ids, "a-first", "x0015", "zz-last"]:
        expected = peer_view.probe_set(ids, me)
        assert [p["id"] for p in fleet.probes_of(me)] == expected, (size, me)
        assert all(p["address"] == f"ip-{p['id']}" for p in fleet.probes_of(me))
