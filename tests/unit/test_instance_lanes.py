"""One instance's slow operation (a guest deaf to ACPI) holds up no other instance."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from atwill.agent import instances
from atwill.agent.config import AgentConfig
from atwill.agent.lanes import Lanes


def test_one_piece_of_work_per_key_and_keys_in_parallel() -> None:
    done: list[str] = []
    lanes = Lanes(workers=4, on_done=lambda: done.append("x"))
    release = threading.Event()
    assert lanes.submit("a", release.wait, 10)
    assert not lanes.submit("a", done.append, "second a")  # busy: not queued
    ran = threading.Event()
    assert lanes.submit("b", ran.set)
    assert ran.wait(5), "b waited for a"
    assert lanes.busy("a") and not lanes.wait(timeout=0.2)
    release.set()
    assert lanes.wait(timeout=5)
    assert not lanes.busy("a") and "second a" not in done
    assert lanes.submit("a", done.append, "third a") and lanes.wait(timeout=5)
    assert "third a" in done


def test_a_failing_piece_of_work_frees_its_lane() -> None:
    lanes = Lanes(workers=1)

    def fail() -> None:
        raise RuntimeError("boom")

    assert lanes.submit("a", fail) and lanes.wait(timeout=5)
    ran = threading.Event()
    assert lanes.submit("a", ran.set) and ran.wait(5)


class SlowStopDriver:
    """Instance a's guest ignores ACPI: its stop waits (here until released)."""

    def __init__(self) -> None:
        self.states = {"a": "running", "b": "shutoff"}
        self.release = threading.Event()
        self.started = threading.Event()

    def uuids(self) -> list[str]:
        return sorted(self.states)

    def state(self, uuid: str) -> str:
        return self.states[uuid]

    def stop(self, uuid: str, timeout: float = 60.0) -> None:
        self.release.wait(10)
        self.states[uuid] = "shutoff"

    def start(self, spec: Any) -> None:
        self.states[spec] = "running"
        self.started.set()


def _wanted(uuid: str, power: str) -> dict[str, Any]:
    return {"id": uuid, "power": power, "reboot_serial": 0, "rebuild_serial": 0}


def test_a_slow_stop_does_not_hold_up_another_instance(tmp_path: Path) -> None:
    manager = instances.InstanceManager(AgentConfig(
        state_dir=tmp_path, controller_url="https://c:1", node_id="n", name="node1"))
    driver = SlowStopDriver()
    manager.driver = driver  # type: ignore[assignment]
    manager._spec = lambda inst: inst["id"]  # type: ignore[method-assign]
    try:
        began = time.monotonic()
        manager.converge([_wanted("a", "stopped"), _wanted("b", "running")])
        assert time.monotonic() - began < 1.0, "converge waited for a's stop"
        assert driver.started.wait(5), "b did not start while a was stopping"
        assert driver.states == {"a": "running", "b": "running"}
        # Asked again while a is still stopping: nothing is queued behind it.
        manager.converge([_wanted("a", "stopped"), _wanted("b", "running")])
        assert manager.lanes.busy("a") and not manager.lanes.busy("b")
    finally:
        driver.release.set()
        assert manager.lanes.wait(timeout=5)
    assert driver.states == {"a": "shutoff", "b": "running"}
