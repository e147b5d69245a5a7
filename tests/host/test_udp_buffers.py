"""udp_buffers on a real process's UDP socket: set from outside, once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from atwill.hostlib.overlay import udp_buffers

pytestmark = pytest.mark.host
HOLDER = ("import socket, sys, time\n"
          "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
          "s.bind(('127.0.0.1', 0))\n"
          "print('ready', flush=True)\n"
          "sys.stdin.read()\n")


@pytest.fixture
def holder(monkeypatch: pytest.MonkeyPatch) -> Iterator[subprocess.Popen[str]]:
    """A process holding one UDP socket with the kernel's default buffers; enlarge() takes
    its program for wireguard-go."""
    with subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            monkeypatch.setattr(udp_buffers, "PROGRAM", os.path.basename(
                os.readlink(f"/proc/{proc.pid}/exe")), raising=False)
            yield proc
        finally:
            proc.kill()


def test_enlarge_sets_the_process_own_socket(holder: subprocess.Popen[str]) -> None:
    before = udp_buffers.buffer_sizes(holder.pid)
    assert len(before) == 1 and before[0][0] < udp_buffers.SIZE
    assert udp_buffers.enlarge(holder.pid) == 1
    # The kernel reports twice what was set (its bookkeeping overhead).
    assert udp_buffers.buffer_sizes(holder.pid) == [(2 * udp_buffers.SIZE,) * 2]


def test_ensure_sets_once(holder: subprocess.Popen[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = udp_buffers.enlarge

    def counted(pid: int, size: int = udp_buffers.SIZE, ifname: str | None = None) -> int:
        calls.append(pid)
        return real(pid, size, ifname)

    monkeypatch.setattr(udp_buffers, "enlarge", counted)
    udp_buffers.ensure(holder.pid)
    udp_buffers.ensure(holder.pid)
    assert calls == [holder.pid]
    assert udp_buffers.buffer_sizes(holder.pid)[0][0] == 2 * udp_buffers.SIZE


def test_a_gone_process_is_no_error() -> None:
    with subprocess.Popen([sys.executable, "-c", "pass"]) as proc:
        proc.wait()
    assert udp_buffers.enlarge(proc.pid) == 0
    udp_buffers.ensure(proc.pid)
