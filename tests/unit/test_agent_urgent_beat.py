"""A heartbeat sent at once for a change (a VM started) reuses the overlay status read less
than an interval ago: its `ip link` and `wg show` were on the way to ACTIVE."""

from __future__ import annotations

from pathlib import Path

import pytest

from atwill.agent import daemon
from atwill.agent.config import AgentConfig


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> daemon.Agent:
    made = daemon.Agent(AgentConfig(state_dir=tmp_path, controller_url="https://c:1",
                                    node_id="n", name="node1"))
    reads = iter(range(1, 100))
    monkeypatch.setattr(made.overlay, "status", lambda: {"read": next(reads)})
    clock = [100.0]
    monkeypatch.setattr(daemon.time, "monotonic", lambda: clock[0])
    made.clock = clock  # type: ignore[attr-defined]
    return made


def test_timed_beats_read_the_overlay_each_time(agent: daemon.Agent) -> None:
    assert [agent._overlay_report()["read"] for _ in range(3)] == [1, 2, 3]


def test_an_urgent_beat_reuses_a_fresh_reading_only(agent: daemon.Agent) -> None:
    agent.interval = 1.0
    assert agent._overlay_report() == {"read": 1}
    agent._urgent = True
    agent.clock[0] += 0.4  # type: ignore[attr-defined]
    assert agent._overlay_report() == {"read": 1}
    agent.clock[0] += 0.7  # type: ignore[attr-defined]
    assert agent._overlay_report() == {"read": 2}  # older than an interval: read again
    agent._urgent = False
    assert agent._overlay_report() == {"read": 3}
