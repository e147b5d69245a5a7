"""Fencing by lease (controller/ha/lease.fence_by_lease) counts a down node's peers against
the probe set the controller handed it (the ring of every node with an overlay address),
never the set its own heartbeat names, as the monitor's confirm rule does (core/ha_confirm).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.config import Settings
from atwill.controller.context import Controller
from atwill.controller.db.models import Base, Node
from atwill.controller.db.session import Database
from atwill.controller.ha import lease

SINCE = dt.datetime(2000, 1, 1)
# Silent this long: far past the lease (6 s) and its margin (2 s).
SILENCE = 30.0


@pytest.fixture
def ctl(tmp_path: Path) -> Iterator[Controller]:
    db = Database(f"sqlite:///{tmp_path / 'lease.db'}")
    Base.metadata.create_all(db.engine)
    yield Controller(settings=Settings(state_dir=tmp_path), db=db, keys=None)  # type: ignore[arg-type]
    db.dispose()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _fleet(ctl: Controller, claimed: list[str], peers: dict[str, float | None]) -> None:
    """node0 down (its fencing failed), its last heartbeat naming `claimed` as its peers;
    every peer in `peers` has an overlay address (the controller's ring), beats now and
    reports the silence given about node0 (None: says nothing of node0)."""
    now = _now()
    with ctl.db.session() as session:
        session.add(Node(id="n0", name="node0", state="down", health="down",
                         fence_state="failed", overlay_ip="10.99.0.1",
                         last_heartbeat=now - dt.timedelta(seconds=SILENCE),
                         host_status={"agent_heard": True,
                                      "peers": {peer: 0.2 for peer in claimed}}))
        for i, (peer, said) in enumerate(sorted(peers.items()), start=2):
            others = {other: 0.2 for other in peers if other != peer}
            session.add(Node(id=peer, name=f"node{peer[1:]}", state="up", health="up",
                             overlay_ip=f"10.99.0.{i}", last_heartbeat=now,
                             host_status={"agent_heard": True, "peers": {
                                 **others, **({} if said is None else {"n0": said})}}))


def _fenced(ctl: Controller) -> tuple[list[str], str | None]:
    with ctl.db.session() as session:
        names = lease.fence_by_lease(session, ctl, SINCE)
    with ctl.db.session() as session:
        return names, session.get(Node, "n0").fence_state


def test_one_peer_the_node_names_does_not_count_it_fenced_by_lease(ctl: Controller) -> None:
    """node0 names n1 alone (a compromised agent, or an older one reporting part of its
    set); n1 lost it, n2 and n3 of the ring the controller handed it say nothing of it
    lost. Its agent may still hear most of its peers and kill nothing: not fenced (before,
    n1 was the majority of the named set, and node0 was counted fenced and evacuated)."""
    _fleet(ctl, ["n1"], {"n1": SILENCE, "n2": None, "n3": None})
    assert _fenced(ctl) == ([], "failed")


def test_a_node_naming_peers_it_has_not_is_fenced_by_lease_on_its_rings_word(
        ctl: Controller) -> None:
    """node0 names ten peers that do not exist; its three real ones all lost it. Before,
    none of the named set reported, so it was never counted fenced (UNKNOWN)."""
    _fleet(ctl, [f"x{i}" for i in range(10)], {"n1": SILENCE, "n2": SILENCE, "n3": SILENCE})
    assert _fenced(ctl) == (["node0"], "ok")


def test_most_of_the_ring_silent_counts_the_node_fenced(ctl: Controller) -> None:
    # The ordinary case, whatever it names: two of its three ring peers lost it, the third
    # says nothing of it.
    _fleet(ctl, ["n1", "n2", "n3"], {"n1": SILENCE, "n2": SILENCE, "n3": None})
    assert _fenced(ctl) == (["node0"], "ok")


def test_a_peer_that_still_hears_it_keeps_it_partitioned(ctl: Controller) -> None:
    _fleet(ctl, ["n1", "n2", "n3"], {"n1": SILENCE, "n2": 0.5, "n3": None})
    names, state = _fenced(ctl)
    assert names == [] and state == "failed"
    with ctl.db.session() as session:
        assert lease.PARTITIONED in (session.get(Node, "n0").fence_message or "")
