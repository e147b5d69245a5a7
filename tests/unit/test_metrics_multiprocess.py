"""/metrics with several workers: a replaced worker's live gauges leave the sum, its
counts stay (controller/metrics.forget_dead_workers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from atwill.controller.metrics import forget_dead_workers


def test_a_dead_workers_live_gauges_go_and_its_counts_stay(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    names = [f"gauge_livesum_{gone}.db", f"gauge_livesum_{os.getpid()}.db",
             f"counter_{gone}.db", f"histogram_{gone}.db"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    forget_dead_workers(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted(names[1:])
