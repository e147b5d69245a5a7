"""Suspend as Nova's managed save: the guest's state streamed to a file, QEMU ended."""

from __future__ import annotations

import os
import time
from pathlib import Path

from atwill.agent.hypervisor.qmp import QMP, QMPError, run_state

# QEMU throttles migrations to 32 MiB/s by default; a save to a local file need not wait.
SAVE_BANDWIDTH = 8 << 30


# The name QEMU keeps the passed descriptor under until the migration has used it.
FD_NAME = "atwill-state"


def _pass_fd(qmp: QMP, path: Path, flags: int) -> None:
    """Open path here (as root) and hand the descriptor to QEMU, which may not be root."""
    fd = os.open(path, flags | os.O_CLOEXEC, 0o600)
    try:
        qmp.execute("getfd", {"fdname": FD_NAME}, fd=fd)
    finally:
        os.close(fd)  # QEMU holds its own copy


def save_state(qmp: QMP, target: Path, timeout: float) -> None:
    """Pause the guest and migrate its state into target; raise QMPError if that fails."""
    qmp.execute("stop")
    qmp.execute("migrate-set-parameters", {"max-bandwidth": SAVE_BANDWIDTH})
    _pass_fd(qmp, target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    qmp.execute("migrate", {"uri": f"fd:{FD_NAME}"})
    deadline = time.monotonic() + timeout
    while True:
        progress = qmp.execute("query-migrate")
        progress = progress if isinstance(progress, dict) else {}
        status = progress.get("status")
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            reason = progress.get("error-desc", status)
            raise QMPError(f"saving the guest state failed: {reason}")
        if time.monotonic() >= deadline:
            qmp.execute("migrate_cancel")
            raise QMPError(f"saving the guest state took over {timeout} s")
        time.sleep(0.1)


def load_state(qmp: QMP, source: Path, timeout: float) -> None:
    """Feed a QEMU started with -incoming defer the saved state, then let the guest run."""
    _pass_fd(qmp, source, os.O_RDONLY)
    qmp.execute("migrate-incoming", {"uri": f"fd:{FD_NAME}"})
    finish_incoming(qmp, timeout)


def finish_incoming(qmp: QMP, timeout: float) -> None:
    """Wait until QEMU has loaded a saved state (-incoming), then let the guest run."""
    deadline = time.monotonic() + timeout
    while True:
        status = run_state(qmp)
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
