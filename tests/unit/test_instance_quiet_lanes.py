"""A converge that finds an instance as wanted sends no heartbeat of its own: every revision
converges every instance, and those beats took the cores from the start being reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from atwill.agent import instances
from atwill.agent.config import AgentConfig


class Driver:
    def __init__(self, states: dict[str, str]) -> None:
        self.states = states

    def uuids(self) -> list[str]:
        return sorted(self.states)

    def state(self, uuid: str) -> str:
        return self.states.get(uuid, "missing")

    def start(self, spec: Any) -> None:
        self.states[spec] = "running"

    def stop(self, uuid: str, timeout: float = 60.0) -> None:
        self.states[uuid] = "shutoff"


def _wanted(uuid: str, power: str, **more: Any) -> dict[str, Any]:
    return {"id": uuid, "power": power, "reboot_serial": 0, "rebuild_serial": 0, **more}


@pytest.fixture
def manager(tmp_path: Path) -> instances.InstanceManager:
    made = instances.InstanceManager(AgentConfig(
        state_dir=tmp_path, controller_url="https://c:1", node_id="n", name="node1"))
    made._spec = lambda inst: inst["id"]  # type: ignore[method-assign]
    made._create = lambda inst: (made.driver.start(inst["id"]),  # type: ignore[method-assign]
                                 made.on_started())
    return made


def beats(manager: instances.InstanceManager, driver: Driver,
          wanted: list[dict[str, Any]]) -> int:
    count = [0]
    manager.driver = driver  # type: ignore[assignment]
    manager.on_started = lambda: count.__setitem__(0, count[0] + 1)
    manager.converge(wanted)
    assert manager.lanes.wait(timeout=5)
    return count[0]


def test_instances_already_as_wanted_send_no_beat(manager: instances.InstanceManager) -> None:
    driver = Driver({"a": "running", "b": "shutoff"})
    assert beats(manager, driver, [_wanted("a", "running"), _wanted("b", "stopped")]) == 0


@pytest.mark.parametrize(("state", "power", "after"), [
    ("shutoff", "running", "running"),   # started
    ("running", "stopped", "shutoff"),   # stopped
])
def test_a_change_is_reported_at_once(manager: instances.InstanceManager, state: str,
                                      power: str, after: str) -> None:
    driver = Driver({"a": state, "b": "running"})
    assert beats(manager, driver, [_wanted("a", power), _wanted("b", "running")]) == 1
    assert driver.states["a"] == after


def test_a_build_reports_once(manager: instances.InstanceManager) -> None:
    driver = Driver({"b": "running"})
    wanted = [_wanted("a", "running", building=True), _wanted("b", "running")]
    assert beats(manager, driver, wanted) == 1
    assert driver.states["a"] == "running"


def test_a_new_error_is_reported(manager: instances.InstanceManager) -> None:
    driver = Driver({"a": "shutoff"})

    def refuse(spec: Any) -> None:
        raise RuntimeError("no room")

    driver.start = refuse  # type: ignore[method-assign]
    assert beats(manager, driver, [_wanted("a", "running")]) == 1
    assert manager.errors["a"] == "RuntimeError: no room"
