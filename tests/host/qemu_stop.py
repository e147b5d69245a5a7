"""Stopping a QEMU a host test started by hand (not through the agent's driver)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from atwill.agent.hypervisor.qmp import QMP


def quit_or_kill(qmp: Path, process: subprocess.Popen) -> None:
    """quit (the disk's qcow2 tables are written out), else kill."""
    try:
        with QMP(qmp, 10) as monitor:
            monitor.execute("quit")
        process.wait(10)
    except Exception:  # noqa: BLE001 - it is killed then
        process.kill()
        process.wait()
