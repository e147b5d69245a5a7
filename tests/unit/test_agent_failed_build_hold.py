"""A build that failed on this node is not tried again here: the controller reschedules it
on the reported error, and a retry racing that reschedule ran one server on two nodes
(found by the two-controller lab proof while a controller was down)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atwill.agent import instances
from atwill.agent.config import AgentConfig


class NoVMs:
    """A hypervisor with no VM on it; every build here fails."""

    def uuids(self) -> list[str]:
        return []

    def state(self, uuid: str) -> str:
        return "missing"


def _inst(uuid: str, building: bool = True, serial: int = 0) -> dict[str, Any]:
    return {"id": uuid, "power": "running", "building": building, "rebuild_serial": serial,
            "reboot_serial": 0, "image": None}


def test_a_failed_build_waits_for_the_controller(tmp_path: Path) -> None:
    manager = instances.InstanceManager(AgentConfig(
        state_dir=tmp_path, controller_url="https://c:8686", node_id="n", name="node1"))
    manager.driver = NoVMs()  # type: ignore[assignment]
    tried: list[str] = []

    def create(inst: dict[str, Any]) -> None:
        tried.append(inst["id"])
        raise OSError("the image download was cut")

    manager._create = create  # type: ignore[method-assign]
    for _ in range(3):  # converges of the same desired state, as while it is unreachable
        manager.converge([_inst("a")])
        assert manager.lanes.wait(timeout=5)
    assert tried == ["a"]
    assert manager.report()["a"]["state"] == "error"  # reported on every heartbeat
    manager.converge([])  # placed elsewhere: forgotten here
    assert manager.lanes.wait(timeout=5)
    manager.converge([_inst("a")])  # placed here again later: a new build
    assert manager.lanes.wait(timeout=5)
    assert tried == ["a", "a"]
    # Never seen unwanted (cut off meanwhile), but evacuated back here: a new build.
    manager.converge([_inst("a", serial=1)])
    assert manager.lanes.wait(timeout=5)
    assert tried == ["a", "a", "a"]
