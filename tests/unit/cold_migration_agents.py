"""A ColdMigrations agent on a fake controller, for the agent's cold-migration tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from atwill.agent.cold_migrations import ColdMigrations
from atwill.agent.hypervisor.qemu import QemuDriver


def agent(tmp_path: Path, name: str, handle: Callable[[httpx.Request], httpx.Response]
          ) -> ColdMigrations:
    """Node name's agent, its instances under tmp_path/name, the controller's answers
    from handle."""
    driver = QemuDriver(tmp_path / name / "instances", sockets_dir=tmp_path / name)
    return ColdMigrations(driver, name, lambda: httpx.Client(
        base_url="https://ctl", transport=httpx.MockTransport(handle)))


def settle(agent: ColdMigrations, timeout: float = 20) -> None:
    """Wait until the agent's transfers are over."""
    deadline = time.monotonic() + timeout
    while agent.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not agent.running
