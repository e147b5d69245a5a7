"""bench volumes' pure parts: the qemu-io scripts and the figures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from atwill.bench import volumes as bv


def test_scripts_queue_requests_then_flush() -> None:
    seq_write, small_read = bv.CASES[1], bv.CASES[2]
    assert bv.script(seq_write, 2) == ("aio_write -q -P 90 0 1048576\n"
                                       "aio_write -q -P 90 1048576 1048576\naio_flush\nquit\n")
    assert bv.script(small_read, 2) == "aio_read -q 0 4096\naio_read -q 4096 4096\n" \
        "aio_flush\nquit\n"


def test_figures() -> None:
    assert bv.figure(bv.CASES[0], 256, 0.5) == 512.0  # MB/s
    assert bv.figure(bv.CASES[3], 20000, 2.0) == 10000  # IOPS


def test_a_failed_run_is_an_error() -> None:
    assert bv.timed([sys.executable, "-c", "import sys; sys.stdin.read()"], "quit\n") < 30
    with pytest.raises(RuntimeError, match="boom"):
        bv.timed([sys.executable, "-c", "import sys; sys.exit('boom')"], "")


def test_both_sides_run_with_the_same_cache_mode() -> None:
    targets = {"local": ["qemu-io", "-f", "qcow2", "/x"], "export": ["qemu-io", "--image-opts"]}
    assert bv.cached(targets, "writeback") == {
        "local": ["qemu-io", "-t", "writeback", "-f", "qcow2", "/x"],
        "export": ["qemu-io", "-t", "writeback", "--image-opts"]}
    assert bv.MODES == ("writeback", "writethrough")


def test_writethrough_runs_the_write_cases_with_fewer_small_requests() -> None:
    assert [(c[0], n) for c, n in bv.cases("writeback", 256)] == [
        ("seq-read", 256), ("seq-write", 256), ("4k-read", bv.SMALL_REQUESTS),
        ("4k-write", bv.SMALL_REQUESTS)]
    assert [(c[0], n) for c, n in bv.cases("writethrough", 256)] == [
        ("seq-write", 256), ("4k-write", bv.SMALL_WRITETHROUGH)]


def test_the_plain_export_is_the_agents_daemon_without_tls() -> None:
    argv = bv.plain_argv(Path("/v/p.qcow2"), Path("/v/plain"), 7)
    assert "--object" not in argv and not any("tls" in word for word in argv)
    assert argv[argv.index("--nbd-server") + 1] == "addr.type=fd,addr.str=7"
    assert "driver=file,node-name=file0,filename=/v/p.qcow2" in argv
    assert argv[argv.index("--export") + 1].endswith("writable=on")
