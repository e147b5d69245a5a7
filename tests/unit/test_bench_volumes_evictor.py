"""volumes_guest.Evictor: a new EVICT line on the console drops the files' cached pages."""

from __future__ import annotations

import time
from pathlib import Path

from atwill.bench.volumes_guest import SCRIPT, Evictor


def test_each_new_evict_line_evicts_once(tmp_path: Path) -> None:
    console, disk = tmp_path / "console.log", tmp_path / "disk.qcow2"
    disk.write_bytes(b"x" * 65536)
    with Evictor(console, [disk], interval=0.01) as evictor:
        time.sleep(0.05)  # no console file yet: nothing, no error
        console.write_text("boot\nVBENCH EVICT 1 vol sr\n")
        deadline = time.monotonic() + 5
        while evictor.count < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # the same line seen again is not a new one
        assert evictor.count == 1
        with console.open("a") as out:
            out.write("VBENCH T 1 vol sr 1.0 2.0\nVBENCH EVICT 1 loc sr\n")
        while evictor.count < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert evictor.count == 2


def test_the_guest_asks_before_reads_only() -> None:
    assert 'case $c in sr|qr|rr) say "EVICT $r $t $c"; sleep 1;; esac' in SCRIPT
