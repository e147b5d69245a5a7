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

from atwill.config import Settings, load
from atwill.controller.cluster import liveness
from atwill.controller.context import Controller
from atwill.controller.db.models import Base, ClusterRevision, Evacuation, Instance, Node
from atwill.controller.db.session import Database
from atwill.controller.ha import monitor, silence_guard
from atwill.controller.revision import changes_since, revision
from atwill.core import ha_health

SINCE = dt.datetime(2000, 1, 1)
HEARD = {"agent_heard": True}


@pytest.fixture(autouse=True)
def _guard_state() -> Iterator[None]:
    silence_guard._held = False
    yield
    silence_guard._held = False


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
           down: int = 0) -> None:
    """count nodes: the first `silent` silent for `silence` s, the next `down` already
    down, the others heard 0.2 s ago."""
    now = _now()
    with ctl.db.session() as session:
        session.add(ClusterRevision(id=1, revision=10, everyone_at=3))
        for i in range(count):
            quiet = i < silent
            session.add(Node(id=f"n{i:03}", name=f"node{i:03}",
                             state="down" if silent <= i < silent + down else "up",
                             health="down" if silent <= i < silent + down else "up",
                             last_heartbeat=now - dt.timedelta(
                                 seconds=silence if quiet else 0.2),
                             host_status=dict(HEARD)))


def _detect(ctl: Controller) -> list[str]:
    with ctl.db.session() as session:
        return [n.id for n in monitor.detect(session, ctl, SINCE)]


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
        families = {f.name: f.samples[0].value for f in silence_guard.families(
            ctl, list(session.query(Node)), _now())}
    assert families == {"atwill_ha_mass_silence": 1, "atwill_ha_unheard_nodes": 40}
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
    assert dataclasses.astuple(m) == (50, 0.55)
    assert not ha_health.mass_silence(49, 49, m)
    assert not ha_health.mass_silence(100, 54, m)
    assert ha_health.mass_silence(100, 55, m)
    assert not ha_health.mass_silence(100, 100, ha_health.MassSilence(0, 0.55))
    assert not ha_health.mass_silence(9, 9, ha_health.MassSilence(1, 0.1))
    assert ha_health.mass_silence(10, 1, ha_health.MassSilence(1, 0.1))


@pytest.mark.parametrize("share", ["0", "-0.5", "1.5"])
def test_a_share_outside_0_1_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         share: str) -> None:
    monkeypatch.setenv("ATWILL_HA_MASS_SILENCE_SHARE", share)
    with pytest.raises(ValueError, match="ha_mass_silence_share"):
        load(state_dir=tmp_path)


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
