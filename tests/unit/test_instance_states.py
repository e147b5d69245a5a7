"""The heartbeat's instance states never wait long on a busy QEMU monitor."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from atwill.agent.instance_states import BUSY, InstanceStates


class Monitors:
    """QEMU monitors by instance: answer a state, fail, or hang until released."""

    def __init__(self) -> None:
        self.answers: dict[str, str] = {}
        self.hung: set[str] = set()
        self.release = threading.Event()
        self.asked: list[str] = []

    def state_of(self, uuid: str) -> str:
        self.asked.append(uuid)
        if uuid in self.hung:
            self.release.wait(10)
        return self.answers[uuid]


@pytest.fixture()
def monitors() -> Iterator[tuple[Monitors, InstanceStates]]:
    found = Monitors()
    states = InstanceStates(found.state_of, budget=0.2, patience=3)
    try:
        yield found, states
    finally:
        found.release.set()
        states.close()


def test_a_hung_monitor_does_not_hold_the_heartbeat(
        monitors: tuple[Monitors, InstanceStates]) -> None:
    found, states = monitors
    found.answers.update(a="running", b="paused")
    assert states.states(["a", "b"]) == {"a": "running", "b": "paused"}
    found.hung.add("b")
    found.answers["b"] = "running"
    started = time.monotonic()
    for _ in range(3):
        assert states.states(["a", "b"]) == {"a": "running", "b": "paused"}  # as last heard
    assert time.monotonic() - started < 1.5  # three beats, not three QMP timeouts
    assert found.asked.count("b") == 2  # the late question is never asked twice at once
    found.release.set()
    time.sleep(0.05)
    assert states.states(["a", "b"]) == {"a": "running", "b": "running"}


def test_a_never_heard_busy_qemu_counts_as_running(
        monitors: tuple[Monitors, InstanceStates]) -> None:
    found, states = monitors
    found.hung.add("new")
    found.answers["new"] = "paused"
    assert states.states(["new"]) == {"new": BUSY}


def test_errors_are_reported_only_after_patience(
        monitors: tuple[Monitors, InstanceStates]) -> None:
    found, states = monitors
    found.answers["a"] = "running"
    states.states(["a"])
    found.answers["a"] = "error"
    assert [states.states(["a"])["a"] for _ in range(3)] == ["running", "running", "error"]
    found.answers["a"] = "running"
    assert states.states(["a"])["a"] == "running"


def test_a_state_that_cannot_be_read_is_an_error_in_time(
        monitors: tuple[Monitors, InstanceStates]) -> None:
    found, states = monitors  # no answer for "x": the state function raises
    assert [states.states(["x"])["x"] for _ in range(3)] == [BUSY, BUSY, "error"]


class HungDriver:
    """Two instances; the monitor of "slow" hangs as a QEMU stuck on an NBD connect."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def uuids(self) -> list[str]:
        return ["fast", "slow"]

    def state(self, uuid: str) -> str:
        if uuid == "slow":
            self.release.wait(10)
        return "running"

    list = None  # the heartbeat no longer asks every monitor in line (driver.list)


def test_the_agents_report_is_on_time_with_a_hung_monitor(tmp_path) -> None:
    from atwill.agent import instances
    from atwill.agent.config import AgentConfig

    manager = instances.InstanceManager(AgentConfig(
        state_dir=tmp_path, controller_url="https://c:1", node_id="n", name="node1"))
    driver = HungDriver()
    manager.driver = driver  # type: ignore[assignment]
    try:
        started = time.monotonic()
        report = manager.report()
        assert time.monotonic() - started < 2.0  # a heartbeat interval, not QMP timeouts
        assert {uuid: entry["state"] for uuid, entry in report.items()} == {
            "fast": "running", "slow": BUSY}
        assert manager.running_count(report) == 2
    finally:
        driver.release.set()
        manager.states.close()
