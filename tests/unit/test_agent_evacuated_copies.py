"""A returning node destroys only the copies the controller names; other disks are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atwill.agent import instances
from atwill.agent.config import AgentConfig


class FakeDriver:
    def __init__(self, states: dict[str, str]) -> None:
        self.states = dict(states)
        self.deleted: list[str] = []
        self.stopped: list[str] = []

    def uuids(self) -> list[str]:
        return sorted(self.states)

    def state(self, uuid: str) -> str:
        return self.states.get(uuid, "missing")

    def stop(self, uuid: str, timeout: float = 60.0) -> None:
        self.stopped.append(uuid)
        self.states[uuid] = "shutoff"

    def delete(self, uuid: str) -> None:
        self.deleted.append(uuid)
        self.states.pop(uuid, None)

    def paths(self, uuid: str) -> Any:
        return type("P", (), {"spec": Path("/nonexistent") / uuid})()


def _manager(tmp_path: Path, driver: FakeDriver) -> instances.InstanceManager:
    manager = instances.InstanceManager(AgentConfig(
        state_dir=tmp_path, controller_url="https://c:1", node_id="n", name="node1"))
    manager.driver = driver  # type: ignore[assignment]
    return manager


def test_only_named_copies_are_destroyed(tmp_path: Path) -> None:
    driver = FakeDriver({"moved": "shutoff", "unknown": "running", "deleted": "running"})
    manager = _manager(tmp_path, driver)
    manager.converge([], destroy=["moved", "deleted", "not-here"])
    assert manager.lanes.wait(timeout=5)
    assert sorted(driver.deleted) == ["deleted", "moved"]
    # Not named: stopped, its disk (files) kept, and left alone from then on.
    assert driver.stopped == ["unknown"] and driver.states == {"unknown": "shutoff"}
    manager.converge([])
    assert manager.lanes.wait(timeout=5)
    assert driver.stopped == ["unknown"] and sorted(driver.deleted) == ["deleted", "moved"]
    # Named later (the server was deleted): destroyed then.
    manager.converge([], destroy=["unknown"])
    assert manager.lanes.wait(timeout=5)
    assert "unknown" in driver.deleted and not driver.states


def test_a_cached_desired_state_keeps_only_running_vms(tmp_path: Path) -> None:
    driver = FakeDriver({"alive": "running", "was-off": "shutoff"})
    manager = _manager(tmp_path, driver)
    cached = [{"id": "alive"}, {"id": "was-off"}, {"id": "never-built"}]
    assert manager.still_running(cached) == [{"id": "alive"}]
