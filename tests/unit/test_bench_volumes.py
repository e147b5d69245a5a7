"""bench volumes' pure parts: qemu-img bench's report read, figures, arguments."""

from __future__ import annotations

import pytest

from atwill.bench import volumes as bv


def test_the_reported_time_is_read() -> None:
    out = "Sending 256 requests, 1048576 bytes each, 8 in parallel\nRun completed in 0.512 " \
          "seconds.\n"
    assert bv.seconds_of(out) == 0.512
    with pytest.raises(ValueError, match="no time"):
        bv.seconds_of("qemu-img: Could not open 'x'")


def test_figures_and_arguments() -> None:
    seq_write, small_read = bv.CASES[1], bv.CASES[2]
    assert bv.figure(seq_write, 256, 0.5) == 512.0  # MB/s
    assert bv.figure(small_read, 20000, 2.0) == 10000  # IOPS
    argv = bv.bench_argv(["-f", "qcow2", "/v"], seq_write, 256)
    assert argv == ["qemu-img", "bench", "-f", "qcow2", "/v", "-c", "256", "-s", "1048576",
                    "-d", "8", "-w", "--pattern=90"]
    assert "-w" not in bv.bench_argv(["/v"], small_read, 10)
