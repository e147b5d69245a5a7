"""Suspend as Nova's managed save: the guest's state streamed to a file, QEMU ended."""

from __future__ import annotations

import time
from pathlib import Path

from atwill.agent.hypervisor.qmp import QMP, QMPError

# QEMU throttles migrations to 32 MiB/s by default; a save to a local file need not wait.
SAVE_BANDWIDTH = 8 << 30


def save_state(qmp: QMP, target: Path, timeout: float) -> None:
    """Pause the guest and migrate its state into target; raise QMPError if that fails."""
    qmp.execute("stop")
    qmp.execute("migrate-set-parameters", {"max-bandwidth": SAVE_BANDWIDTH})
    quoted = "'" + str(target).replace("'", "'\\''") + "'"
    qmp.execute("migrate", {"uri": f"exec:cat > {quoted}"})
    deadline = time.monotonic() + timeout
    while True:
        status = qmp.execute("query-migrate").get("status")
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            raise QMPError(f"saving the guest state failed: {status}")
        if time.monotonic() >= deadline:
            qmp.execute("migrate_cancel")
            raise QMPError(f"saving the guest state took over {timeout} s")
        time.sleep(0.1)


def finish_incoming(qmp: QMP, timeout: float) -> None:
    """Wait until QEMU has loaded a saved state (-incoming), then let the guest run."""
    deadline = time.monotonic() + timeout
    while True:
        status = qmp.execute("query-status")["status"]
        if status == "running":
            return
        # A state saved from a paused guest loads as paused (QEMU keeps the source's run state).
        if status in ("paused", "postmigrate", "prelaunch"):
            qmp.execute("cont")
            return
        if status != "inmigrate":
            raise QMPError(f"loading the saved state ended in {status}")
        if time.monotonic() >= deadline:
            raise QMPError(f"loading the saved state took over {timeout} s")
        time.sleep(0.1)
