"""A node judged down moves its own revision only (no other node's desired state reads
whether a node is up), and a silence too wide to be the nodes' judges none down
(core/ha_health.mass_silence, controller/ha/silence_guard)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from atwill.config import Settings, load
from atwill.controller.cluster import liveness
from atwill.controller.context import Controller
from atwill.controller.db.models import Base, ClusterRevision, Evacuation, Instance, Node
from atwill.controller.db.session import Database
from atwill.controller.fencing import api as fencing
from atwill.controller.ha import monitor, silence_guard
from atwill.controller.revision import changes_since, revision
from atwill.core import ha_health
from tests.unit.ha_guard import HEARD, SINCE, _guard_state  # noqa: F401 - autouse


def _ctl(tmp_path: Path, **settings: object) -> Controller:
    db = Database(f"sqlite:///{tmp_path / 'ha.db'}")
    Base.metadata.create_all(db.engine)
    return Controller(settings=Settings(state_dir=tmp_path, ha_peer_confirm=0, **settings),  # type: ignore[arg-type]
                      db=db, keys=None)


@pytest.fixture
def ctl(tmp_path: Path) -> Iterator[Controller]:
    made = _ctl(tmp_path)
    yield made
    made.db.dispose()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(
        seconds=liveness.staleness())


def _fleet(ctl: Controller, count: int, silent: int, silence: float = 5.0,
           down: int = 0, down_for: float = 0.2, peak: float = 0.0) -> None:
    """count nodes: the first `silent` silent for `silence` s, the next `down` already
    down (heard `down_for` s ago), the others heard 0.2 s ago."""
    now = _now()
    with ctl.db.session() as session:
        session.add(ClusterRevision(id=1, revision=10, everyone_at=3))
        for i in range(count):
            quiet = i < silent
            session.add(Node(id=f"n{i:03}", name=f"node{i:03}",
                             state="down" if silent <= i < silent + down else "up",
                             health="down" if silent <= i < silent + down else "up",
                             last_heartbeat=now - dt.timedelta(
                                 seconds=silence if quiet else down_for
                                 if silent <= i < silent + down else 0.2),
                             heartbeat_gap_peak=peak if quiet else 0.0,
                             host_status=dict(HEARD)))


def _detect(ctl: Controller) -> list[str]:
    with ctl.db.session() as session:
        return [n.id for n in monitor.detect(session, ctl, SINCE)]


def _families(ctl: Controller, session: Session) -> dict[str, float]:
    return {f.name: f.samples[0].value for f in silence_guard.families(
        ctl, list(session.query(Node)))}


def _healths(ctl: Controller) -> dict[str, str]:
    with ctl.db.session() as session:
        return {n.id: n.health for n in session.query(Node)}


def test_a_node_judged_down_moves_its_own_revision_and_no_other(ctl: Controller) -> None:
    _fleet(ctl, 4, silent=1)
    assert _detect(ctl) == ["n000"]
    with ctl.db.session() as session:
        clock, moved = changes_since(session, 10)
        row = session.get(ClusterRevision, 1)
        assert (clock, moved, row.everyone_at) == (11, {"n000"}, 3)  # not every node
        assert revision(session) == 11


def test_the_cascade_of_a_fleet_moves_each_down_node_alone(tmp_path: Path) -> None:
    ctl = _ctl(tmp_path)
    _fleet(ctl, 60, silent=20)  # a third: under the mass-silence share
    assert len(_detect(ctl)) == 20
    with ctl.db.session() as session:
        _, moved = changes_since(session, 10)
    assert moved == {f"n{i:03}" for i in range(20)}
    ctl.db.dispose()


def test_a_wide_silence_of_a_large_fleet_judges_none_down_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ctl = _ctl(tmp_path)
    _fleet(ctl, 60, silent=40)
    with caplog.at_level(logging.WARNING, "atwill.ha"):
        assert _detect(ctl) == []
    healths = _healths(ctl)
    assert {healths[f"n{i:03}"] for i in range(40)} == {"suspect"}  # late, not down
    assert {healths[f"n{i:03}"] for i in range(40, 60)} == {"up"}
    assert "40 of 60 nodes unheard at once" in caplog.text
    with ctl.db.session() as session:
        assert changes_since(session, 10) == (10, set())  # nothing moved
        families = _families(ctl, session)
    assert families["atwill_ha_mass_silence"] == 1
    assert families["atwill_ha_unheard_nodes"] == 40
    assert families["atwill_ha_counted_nodes"] == 60
    assert 0 < families["atwill_ha_mass_silence_seconds"] < 60
    # Heard again: the guard lets go, and says so.
    with ctl.db.session() as session:
        for node in session.query(Node):
            node.last_heartbeat = _now()
    caplog.clear()
    with caplog.at_level(logging.WARNING, "atwill.ha"):
        assert _detect(ctl) == []
    assert "below the mass-silence share again" in caplog.text
    ctl.db.dispose()


def test_nodes_already_down_count_so_a_cascade_stops_at_the_share(tmp_path: Path) -> None:
    ctl = _ctl(tmp_path)
    _fleet(ctl, 60, silent=10, down=25)  # 35 of 60 unheard: 58 %
    assert _detect(ctl) == []
    ctl.db.dispose()


@pytest.mark.parametrize(("settings", "count", "silent", "down"), [
    ({}, 3, 1, 1),                           # the lab: one node of three, never held
    ({}, 40, 30, 30),                        # under 50 nodes: judged as usual
    ({"ha_mass_silence_nodes": 0}, 60, 40, 40),  # the guard off
    ({"ha_mass_silence_nodes": 2}, 3, 2, 2),     # never below the floor of 10 nodes
    ({"ha_mass_silence_share": 1.0}, 60, 40, 40),
])
def test_small_fleets_and_the_settings_keep_the_usual_verdicts(
        tmp_path: Path, settings: dict, count: int, silent: int, down: int) -> None:
    ctl = _ctl(tmp_path, **settings)
    _fleet(ctl, count, silent=silent)
    assert len(_detect(ctl)) == down
    ctl.db.dispose()


def test_mass_silence_thresholds() -> None:
    m = ha_health.MassSilence()
    assert dataclasses.astuple(m) == (50, 0.55, 60.0, 300.0)
    assert not ha_health.mass_silence(49, 49, m)
    assert not ha_health.mass_silence(100, 54, m)
    assert ha_health.mass_silence(100, 55, m)
    assert not ha_health.mass_silence(100, 100, ha_health.MassSilence(0, 0.55))
    assert not ha_health.mass_silence(9, 9, ha_health.MassSilence(1, 0.1))
    assert ha_health.mass_silence(10, 1, ha_health.MassSilence(1, 0.1))


@pytest.mark.parametrize(("name", "value"), [
    ("share", "0"), ("share", "-0.5"), ("share", "1.5"),
    # A share under a half: one long-dead node in 50 (0.02) would disable HA.
    ("share", "0.01"), ("share", "0.49"),
    # Negative nodes silently disabled the guard, 1 to 9 were silently raised to 10.
    ("nodes", "-1"), ("nodes", "1"), ("nodes", "9"),
    ("max", "-1"), ("max", "301"),
])
def test_mass_silence_settings_out_of_range_are_refused_at_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"ATWILL_HA_MASS_SILENCE_{name.upper()}", value)
    with pytest.raises(ValueError, match=f"ha_mass_silence_{name}: expected"):
        load(state_dir=tmp_path)


@pytest.mark.parametrize(("name", "value"), [
    ("nodes", "0"), ("nodes", "10"), ("share", "0.5"), ("share", "1"), ("max", "0"),
    ("max", "300")])
def test_mass_silence_settings_at_their_bounds_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"ATWILL_HA_MASS_SILENCE_{name.upper()}", value)
    assert getattr(load(state_dir=tmp_path), f"ha_mass_silence_{name}") == float(value)


def test_an_evacuation_that_stops_its_server_moves_that_node_alone(ctl: Controller) -> None:
    _fleet(ctl, 3, silent=0)
    with ctl.db.session() as session:
        inst = Instance(id="i1", name="s", project_id="p", user_id="u", vcpus=1,
                        memory_mb=1, disk_gb=1, node_id="n001", node_name="node001",
                        vm_state="active")
        session.add(inst)
        session.add(Evacuation(instance_id="i1", source_node_id="n000",
                               source_node_name="node000", dest_node_name="node001",
                               status="rebuilding", stop_after=True))
    with ctl.db.session() as session:
        monitor.finish(session)
    with ctl.db.session() as session:
        assert session.get(Instance, "i1").desired_power == "stopped"
        assert changes_since(session, 10) == (11, {"n001"})


# Review of 4abdb2a: the hold was unbounded, fleet-wide and blocked the operator's ways out.

def test_long_dead_nodes_are_out_of_the_count(tmp_path: Path) -> None:
    """100 nodes, 5 dead for an hour, 50 lose power: 50 of 95 is under the share, so the
    50 are judged down (before: 55 of 100 unheard held every verdict until power came
    back)."""
    ctl = _ctl(tmp_path, ha_mass_silence_nodes=50)
    _fleet(ctl, 100, silent=50, down=5, down_for=3600)
    assert len(_detect(ctl)) == 50
    with ctl.db.session() as session:
        families = _families(ctl, session)
    assert (families["atwill_ha_counted_nodes"], families["atwill_ha_unheard_nodes"]) == (
        95, 50)
    ctl.db.dispose()


def test_recently_down_nodes_still_count(tmp_path: Path) -> None:
    ctl = _ctl(tmp_path)
    _fleet(ctl, 60, silent=10, down=25, down_for=200)  # down for minutes, under `recent`
    assert _detect(ctl) == []
    ctl.db.dispose()


def test_the_hold_lasts_ha_mass_silence_max_then_verdicts_resume(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ctl = _ctl(tmp_path)
    _fleet(ctl, 60, silent=40)
    with caplog.at_level(logging.WARNING, "atwill.ha"):
        assert _detect(ctl) == []
    assert "for 60 s at most, until" in caplog.text and "then nodes are judged" in caplog.text
    # The same silence, 60 s on: the hold ends, the 40 are judged down, and it is said.
    with ctl.db.session() as session:
        for node in session.query(Node).filter(Node.health == "suspect"):
            node.last_heartbeat = _now() - dt.timedelta(seconds=63)
    caplog.clear()
    with caplog.at_level(logging.WARNING, "atwill.ha"):
        assert len(_detect(ctl)) == 40
    assert "the mass-silence hold ends" in caplog.text
    with ctl.db.session() as session:
        families = _families(ctl, session)
    assert families["atwill_ha_mass_silence"] == 0
    assert families["atwill_ha_mass_silence_seconds"] > 60
    ctl.db.dispose()


def test_ha_mass_silence_max_sets_the_hold(tmp_path: Path) -> None:
    ctl = _ctl(tmp_path, ha_mass_silence_max=2.0)
    _fleet(ctl, 60, silent=40, silence=5.0)  # unheard for 3.4 s: past a 2 s hold
    assert len(_detect(ctl)) == 40
    ctl.db.dispose()


def test_fence_confirm_works_during_a_hold_and_the_node_is_then_down(tmp_path: Path) -> None:
    """Before: 'still sends heartbeats' (the node is silent) and no way out but to wait."""
    ctl = _ctl(tmp_path)
    _fleet(ctl, 60, silent=40)
    assert _detect(ctl) == []
    with ctl.db.session() as session:
        assert fencing.confirm(session, session.get(Node, "n000")).method == "manual"
        with pytest.raises(Exception, match="still sends heartbeats"):
            fencing.confirm(session, session.get(Node, "n050"))  # heard: refused still
    assert _detect(ctl) == ["n000"]  # confirmed off: judged down despite the hold
    with ctl.db.session() as session:
        node = session.get(Node, "n000")
        assert (node.state, node.health, node.fence_state) == ("down", "down", "ok")
        assert monitor.needs_fencing(session, ctl) == []  # already vouched for
        assert session.get(Node, "n001").health == "suspect"  # the others still held


def test_a_node_forced_down_during_a_hold_is_judged_down(tmp_path: Path) -> None:
    """Before: held suspect, so never evacuated (auto_evacuate needs state down)."""
    ctl = _ctl(tmp_path)
    _fleet(ctl, 60, silent=40)
    assert _detect(ctl) == []
    with ctl.db.session() as session:
        session.get(Node, "n001").forced_down = True
    assert _detect(ctl) == ["n001"]
    with ctl.db.session() as session:
        assert [n.id for n in session.query(Node).filter(
            Node.health == "down", Node.state == "down")] == ["n001"]


def test_a_confirmed_node_that_beats_again_loses_its_fenced_mark(ctl: Controller) -> None:
    """Confirmed off while silent, it beats after all: a stale mark would let a later
    silence evacuate it without fencing."""
    _fleet(ctl, 3, silent=1)
    with ctl.db.session() as session:
        node = session.get(Node, "n000")
        node.health = "suspect"
        fencing.confirm(session, node)
        monitor.returned(session, node, None)
        assert (node.health, node.fence_state, node.fenced_at) == ("up", None, None)


def test_the_end_of_a_hold_is_said_when_every_node_is_heard_at_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The monitor's all-heard shortcut skipped the guard: its end came late or never."""
    ctl = _ctl(tmp_path)
    _fleet(ctl, 60, silent=40)
    assert _detect(ctl) == []
    with ctl.db.session() as session:  # their beats came: health up again (returned)
        for node in session.query(Node):
            node.last_heartbeat, node.health = _now(), "up"
    with caplog.at_level(logging.WARNING, "atwill.ha"):
        assert _detect(ctl) == []
    assert "below the mass-silence share again" in caplog.text
    assert silence_guard._state == ""
    ctl.db.dispose()


def test_the_metric_counts_silence_from_the_monitors_since(tmp_path: Path) -> None:
    """After a restart the monitor counts silence from then: the metric too."""
    ctl = _ctl(tmp_path)
    _fleet(ctl, 60, silent=40)
    with ctl.db.session() as session:
        assert monitor.detect(session, ctl, _now() - dt.timedelta(seconds=0.1)) == []
    assert silence_guard._state == ""
    with ctl.db.session() as session:
        families = _families(ctl, session)
    assert (families["atwill_ha_mass_silence"], families["atwill_ha_unheard_nodes"]) == (0, 0)
    ctl.db.dispose()


def test_a_node_late_within_its_own_usual_gap_is_not_unheard(tmp_path: Path) -> None:
    """Nodes on a lossy link (recent worst gap 4 s) silent 2 s are not unheard: no hold."""
    ctl = _ctl(tmp_path)
    _fleet(ctl, 60, silent=40, silence=2.0, peak=4.0)
    with ctl.db.session() as session:
        families = _families(ctl, session)
    assert (families["atwill_ha_mass_silence"], families["atwill_ha_unheard_nodes"]) == (0, 0)
    assert ha_health.unheard_after(3.0, ha_health.Thresholds()) == 3.0
    assert ha_health.unheard_after(0.5, ha_health.Thresholds()) == 1.6
    assert ha_health.unheard_after(9.0, ha_health.Thresholds()) == 9.0
    assert ha_health.unheard_after(20.0, ha_health.Thresholds()) == 10.0  # its ceiling
    ctl.db.dispose()


def test_silent_for_is_the_time_since_the_share_was_reached() -> None:
    m = ha_health.MassSilence(min_nodes=10, share=0.5)
    assert ha_health.silent_for([30.0, 20.0, 10.0, 5.0, 1.0], 10, m) == 1.0
    assert ha_health.silent_for([30.0, 20.0, 10.0, 5.0, 1.0, 0.0], 10, m) == 1.0
    assert ha_health.silent_for([30.0, 20.0, 10.0, 5.0], 10, m) is None
    assert ha_health.holds([70.0] * 6, 10, m) is False
    assert ha_health.holds([59.0] * 6, 10, m) is True
