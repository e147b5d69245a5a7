"""Detect writes its verdicts compare-and-set (controller/ha/monitor._write_verdict): a node
whose beat commits between the pass's read and its write is neither marked down nor fenced;
the fence step refuses a node heard after its verdict. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from atwill.config import Settings
from atwill.controller import background
from atwill.controller.cluster import liveness
from atwill.controller.context import Controller
from atwill.controller.db.models import Node
from atwill.controller.db.session import Database, migrate
from atwill.controller.ha import monitor, silence_guard
from tests.conftest import fresh_postgres
from tests.unit.ha_guard import HEARD, SINCE, _guard_state  # noqa: F401 - autouse


@pytest.fixture(params=["sqlite", "postgres"])
def ctl(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Controller]:
    def made(db: Database) -> Controller:
        return Controller(settings=Settings(state_dir=tmp_path, ha_peer_confirm=0),  # type: ignore[arg-type]
                          db=db, keys=None)
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'ha.db'}")
        migrate(db.engine)
        yield made(db)
        db.dispose()
        return
    for db in fresh_postgres():  # its own database, dropped after
        migrate(db.engine)
        yield made(db)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _fleet(ctl: Controller, silent: tuple[str, ...] = ("n0", "n1")) -> None:
    """n0..n3: the `silent` ones unheard for 10 s (down), the others heard just now."""
    now = _now() - dt.timedelta(seconds=liveness.staleness())
    with ctl.db.session() as session:
        for i in range(4):
            node_id = f"n{i}"
            ago = 10.0 if node_id in silent else 0.2
            session.add(Node(id=node_id, name=f"node{i}", state="up", health="up",
                             last_heartbeat=now - dt.timedelta(seconds=ago),
                             host_status=dict(HEARD)))


def _at_read(monkeypatch: pytest.MonkeyPatch, act: Callable[[], None]) -> None:
    """Run act once, after detect read the rows and before it writes a verdict."""
    hold, done = silence_guard.hold, []

    def hooked(*args: Any, **kwargs: Any) -> bool:
        if not done:
            done.append(True)
            act()
        return hold(*args, **kwargs)
    monkeypatch.setattr(silence_guard, "hold", hooked)


def _beat(ctl: Controller, node_id: str) -> None:
    """As the full heartbeat path commits (cluster/agents._full): returned, then the row."""
    with ctl.db.session() as session:
        node = session.get(Node, node_id)
        monitor.returned(session, node, None)
        node.last_heartbeat = _now()


def _pass(ctl: Controller) -> tuple[list[str], list[str]]:
    """One detect pass and the fencing marks of the same transaction (background._check)."""
    with ctl.db.session() as session:
        down = [n.id for n in monitor.detect(session, ctl, SINCE)]
        pending = monitor.needs_fencing(session, ctl)
    return down, pending


def _row(ctl: Controller, node_id: str) -> tuple[str, str, str | None]:
    with ctl.db.session() as session:
        node = session.get(Node, node_id)
        return node.state, node.health, node.fence_state


def test_a_node_that_beats_after_the_read_is_neither_down_nor_fenced(
        ctl: Controller, monkeypatch: pytest.MonkeyPatch) -> None:
    _fleet(ctl)
    _at_read(monkeypatch, lambda: _beat(ctl, "n0"))
    down, pending = _pass(ctl)
    assert "n0" not in down and "n0" not in pending
    assert _row(ctl, "n0") == ("up", "up", None)
    # The other silent node is judged as ever.
    assert down == ["n1"]
    assert _row(ctl, "n1")[:2] == ("down", "down")


def test_the_node_is_judged_again_next_pass(
        ctl: Controller, monkeypatch: pytest.MonkeyPatch) -> None:
    _fleet(ctl, silent=("n0",))
    _at_read(monkeypatch, lambda: _beat(ctl, "n0"))
    assert _pass(ctl) == ([], [])
    assert _pass(ctl) == ([], [])  # heard just now: up
    assert _row(ctl, "n0") == ("up", "up", None)


def test_a_node_removed_after_the_read_does_not_stop_the_pass(
        ctl: Controller, monkeypatch: pytest.MonkeyPatch) -> None:
    _fleet(ctl)

    def remove() -> None:
        with ctl.db.session() as session:
            session.delete(session.get(Node, "n0"))
    _at_read(monkeypatch, remove)
    down, _ = _pass(ctl)
    assert down == ["n1"]
    assert _row(ctl, "n1")[:2] == ("down", "down")


def test_a_mass_event_marks_every_silent_node_down(ctl: Controller) -> None:
    """Verdicts by UPDATE, the down nodes loaded in one SELECT: same nodes, same order."""
    _fleet(ctl, silent=("n0", "n1", "n2"))
    down, pending = _pass(ctl)
    assert down == ["n0", "n1", "n2"]
    assert sorted(pending) == ["n0", "n1", "n2"]


def _fence_step(ctl: Controller, monkeypatch: pytest.MonkeyPatch, heard_after: bool
                ) -> list[str]:
    """n0 judged down (detect finds nothing more), heard a second after its verdict or
    not: the nodes the monitor's fence step fenced."""
    _fleet(ctl, silent=("n0",))
    fenced: list[str] = []
    monkeypatch.setattr(monitor, "fence", lambda _ctl, _s, node: fenced.append(node.id))
    monkeypatch.setattr(monitor, "detect", lambda *_a: [])
    with ctl.db.session() as session:
        node = session.get(Node, "n0")
        node.state = node.health = "down"
        if heard_after:
            node.health_changed_at = _now() - dt.timedelta(seconds=1)
            node.last_heartbeat = _now()
        else:
            node.health_changed_at = _now()
    background._check(ctl, SINCE)
    return fenced


def test_the_fence_step_refuses_a_node_heard_after_its_verdict(
        ctl: Controller, monkeypatch: pytest.MonkeyPatch) -> None:
    """Down, then a beat lands that leaves the verdict (another path, a skewed clock):
    marked pending, the fence step powers nothing off and clears the mark."""
    assert _fence_step(ctl, monkeypatch, heard_after=True) == []
    assert _row(ctl, "n0") == ("down", "down", None)


def test_the_fence_step_fences_a_node_unheard_since_its_verdict(
        ctl: Controller, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _fence_step(ctl, monkeypatch, heard_after=False) == ["n0"]
