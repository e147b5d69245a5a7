"""core/restart_notice and the monitor's use of it: a node whose agent announced a restart is
neither down nor fenced while the notice holds, whatever its peers say; after the deadline
its silence is counted from there, and a forced down node ignores it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.config import Settings
from atwill.controller.context import Controller
from atwill.controller.db.models import Base, Node
from atwill.controller.db.session import Database
from atwill.controller.ha import lease as ha_lease
from atwill.controller.ha import monitor
from atwill.core import restart_notice
from atwill.core.errors import BadRequest

SINCE = dt.datetime(2000, 1, 1)
HEARD = {"agent_heard": True}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@pytest.mark.parametrize("body", [
    [], "60", {}, {"seconds": "60"}, {"seconds": True}, {"seconds": 0}, {"seconds": 0.5},
    {"seconds": 601}, {"seconds": float("nan")}, {"seconds": 60, "node": "other"},
    {"seconds": 60, "reason": 5}, {"seconds": 60, "reason": "x" * 256},
    {"seconds": 60, "reason": "bad\nline"}, {"seconds": 10 ** 400},
])
def test_bad_notices_are_refused(body: object) -> None:
    with pytest.raises(BadRequest):
        restart_notice.parse(body)


def test_a_notice_is_read_and_bounded() -> None:
    assert restart_notice.parse({"seconds": 600}) == (600.0, "agent restarting")
    assert restart_notice.parse({"seconds": 1, "reason": " upgrade "}) == (1.0, "upgrade")
    assert [restart_notice.bounded(s) for s in (0, -5, 0.2, 60, 9999, float("inf"))] == [
        0.0, 0.0, 1.0, 60.0, 600.0, 0.0]


def test_the_notice_counts_as_a_heartbeat_at_its_deadline() -> None:
    now, beat = _now(), _now() - dt.timedelta(seconds=30)
    status = {"uptime_s": 1.0, restart_notice.KEY: restart_notice.record(now, 60, "r")}
    until = restart_notice.deadline(status)
    assert until == now + dt.timedelta(seconds=60)
    assert restart_notice.holds(status, now + dt.timedelta(seconds=59))
    assert not restart_notice.holds(status, now + dt.timedelta(seconds=60))
    assert restart_notice.heard_at(beat, status) == until
    assert restart_notice.heard_at(beat, {"uptime_s": 1.0}) == beat
    assert restart_notice.deadline({restart_notice.KEY: {"until": "yesterday"}}) is None


@pytest.fixture
def ctl(tmp_path: Path) -> Iterator[Controller]:
    db = Database(f"sqlite:///{tmp_path / 'ha.db'}")
    Base.metadata.create_all(db.engine)
    yield Controller(settings=Settings(state_dir=tmp_path), db=db, keys=None)  # type: ignore[arg-type]
    db.dispose()


def _lab(ctl: Controller, silence: float, notice_left: float | None,
         forced_down: bool = False) -> None:
    """node0 silent for `silence` s, its notice ending in notice_left s (None: no notice);
    its peers n1..n3 heartbeat and have not heard it for as long."""
    now = _now()
    status = {**HEARD, "peers": {"n1": 0.2, "n2": 0.2, "n3": 0.2}}
    if notice_left is not None:
        given = now - dt.timedelta(seconds=silence)
        status[restart_notice.KEY] = restart_notice.record(given, silence + notice_left, "r")
    with ctl.db.session() as session:
        session.add(Node(id="n0", name="node0", state="up", health="up",
                         forced_down=forced_down, host_status=status,
                         last_heartbeat=now - dt.timedelta(seconds=silence)))
        for i in (1, 2, 3):
            session.add(Node(id=f"n{i}", name=f"node{i}", state="up", health="up",
                             last_heartbeat=now - dt.timedelta(seconds=0.2),
                             host_status={**HEARD, "peers": {"n0": silence}}))


def _detect(ctl: Controller) -> tuple[list[str], str]:
    with ctl.db.session() as session:
        down = [n.name for n in monitor.detect(session, ctl, SINCE)]
    with ctl.db.session() as session:
        return down, session.get(Node, "n0").health


def test_without_a_notice_a_silent_node_is_down(ctl: Controller) -> None:
    _lab(ctl, 20.0, None)
    assert _detect(ctl) == (["node0"], "down")


def test_a_notice_holds_off_detection_and_the_peers_word(ctl: Controller) -> None:
    _lab(ctl, 20.0, 5.0)
    assert _detect(ctl) == ([], "restarting")


def test_after_its_deadline_the_silence_counts_from_there(ctl: Controller) -> None:
    _lab(ctl, 20.0, -1.0)  # the deadline passed a second ago: not late yet
    assert _detect(ctl) == ([], "restarting")
    with ctl.db.session() as session:
        node = session.get(Node, "n0")
        node.host_status = {**node.host_status, restart_notice.KEY: restart_notice.record(
            _now() - dt.timedelta(seconds=20), 17.0, "r")}  # the deadline passed 3 s ago
    assert _detect(ctl) == (["node0"], "down")


def test_forced_down_overrides_a_notice(ctl: Controller) -> None:
    _lab(ctl, 20.0, 5.0, forced_down=True)
    assert _detect(ctl) == (["node0"], "down")


def test_the_lease_counts_from_the_notice_deadline(ctl: Controller) -> None:
    """Down past its deadline, fencing failed: fenced by lease only lease + margin after
    the deadline (the agent's keeper counts its lease from there), not after the last
    heartbeat, long before."""
    _lab(ctl, 30.0, -4.0)
    with ctl.db.session() as session:
        node = session.get(Node, "n0")
        node.health, node.state, node.fence_state = "down", "down", "failed"
    with ctl.db.session() as session:
        assert ha_lease.fence_by_lease(session, ctl, SINCE) == []
    with ctl.db.session() as session:
        node = session.get(Node, "n0")
        node.host_status = {**node.host_status, restart_notice.KEY: None}
    with ctl.db.session() as session:
        assert ha_lease.fence_by_lease(session, ctl, SINCE) == ["node0"]


def test_a_late_heartbeat_of_the_run_that_gave_the_notice_keeps_it() -> None:
    """A heartbeat sent before the notice but landing after it must not end the notice:
    the controller would count the lease from it while the stopped agent's lease keeper
    lets the VMs run until the deadline plus the lease (a double run)."""
    from types import SimpleNamespace

    from atwill.controller.cluster import nodes

    now, run = _now(), "0123456789abcdef"
    notice = restart_notice.record(now, 60, "r", run)
    node = SimpleNamespace(last_heartbeat=now, heartbeat_gap_peak=0.0, state="up",
                           overlay_status={}, endpoint_host="10.0.0.1", running_vms=0,
                           host_status={"uptime_s": 1.0, restart_notice.KEY: notice})
    nodes.heartbeat(None, node, None, {}, 1, "10.0.0.1",  # type: ignore[arg-type]
                    {"uptime_s": 2.0, restart_notice.RUN_KEY: run})
    assert node.host_status[restart_notice.KEY] == notice
    assert node.host_status["uptime_s"] == 2.0
    nodes.heartbeat(None, node, None, {}, 1, "10.0.0.1",  # type: ignore[arg-type]
                    {"uptime_s": 3.0, restart_notice.RUN_KEY: "fedcba9876543210"})
    assert restart_notice.KEY not in node.host_status  # the restarted agent ends it
    # A heartbeat cannot give itself a notice (past the route's bounds and checks).
    forged = {"until": "9999-01-01T00:00:00.000000Z", restart_notice.RUN_KEY: run}
    nodes.heartbeat(None, node, None, {}, 1, "10.0.0.1",  # type: ignore[arg-type]
                    {restart_notice.KEY: forged, restart_notice.RUN_KEY: run})
    assert restart_notice.KEY not in node.host_status
    # A notice past its deadline, or one without a run (an older agent), is not kept.
    late = {restart_notice.KEY: restart_notice.record(now - dt.timedelta(seconds=61), 60,
                                                      "r", run)}
    assert restart_notice.KEY not in restart_notice.after_heartbeat(
        late, {restart_notice.RUN_KEY: run}, now)
    anonymous = {restart_notice.KEY: restart_notice.record(now, 60, "r")}
    assert restart_notice.KEY not in restart_notice.after_heartbeat(
        anonymous, {restart_notice.RUN_KEY: run}, now)


@pytest.mark.parametrize("run", [5, "", "abc", "ABCDEF0123", "g" * 16, "a" * 65])
def test_a_notice_names_its_run_in_hex_or_is_refused(run: object) -> None:
    with pytest.raises(BadRequest):
        restart_notice.run_of({"seconds": 60, restart_notice.RUN_KEY: run})
    assert restart_notice.run_of({"seconds": 60}) is None
    assert restart_notice.run_of({restart_notice.RUN_KEY: "a" * 16}) == "a" * 16
