"""enlarge() sets buffers only on root's wireguard-go for our interface, checked after it
holds a pidfd (a reused PID is left alone), and a listed descriptor number reused as
something else meanwhile is skipped and closed, never raised."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from atwill.hostlib.overlay import udp_buffers
from tests.host.test_udp_buffers import HOLDER

pytestmark = pytest.mark.host


def _hold(python: str = sys.executable, **kwargs: object) -> subprocess.Popen[str]:
    proc = subprocess.Popen([python, "-c", HOLDER, "wg-test0"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, **kwargs)  # type: ignore[call-overload]
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture
def holder() -> Iterator[subprocess.Popen[str]]:
    with _hold() as proc:
        try:
            yield proc
        finally:
            proc.kill()


def _program_of(pid: int) -> str:
    return os.path.basename(os.readlink(f"/proc/{pid}/exe"))


def _untouched(pid: int) -> bool:
    return udp_buffers.buffer_sizes(pid)[0][0] < udp_buffers.SIZE


def test_another_program_is_left_alone(holder: subprocess.Popen[str]) -> None:
    assert udp_buffers.enlarge(holder.pid, ifname="wg-test0") == 0  # python, not wireguard-go
    assert _untouched(holder.pid)


def test_a_process_for_another_interface_is_left_alone(
        holder: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(udp_buffers, "PROGRAM", _program_of(holder.pid), raising=False)
    assert udp_buffers.enlarge(holder.pid, ifname="wg-other1") == 0
    assert _untouched(holder.pid)
    assert udp_buffers.enlarge(holder.pid, ifname="wg-test0") == 1


def test_another_users_process_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        # The system's Python: nobody may not reach the venv's.
        proc = _hold("/usr/bin/python3", user=65534, group=65534, cwd="/")
    except (OSError, AssertionError) as err:
        pytest.skip(f"cannot run the holder as nobody: {err}")
    with proc:
        try:
            monkeypatch.setattr(udp_buffers, "PROGRAM", _program_of(proc.pid), raising=False)
            assert udp_buffers.enlarge(proc.pid, ifname="wg-test0") == 0
            assert _untouched(proc.pid)
        finally:
            proc.kill()


def test_a_descriptor_reused_as_no_socket_is_skipped_and_closed(
        holder: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The holder's fd 0 (a pipe) stands for a socket's number closed and reused between
    the listing and pidfd_getfd."""
    monkeypatch.setattr(udp_buffers, "PROGRAM", _program_of(holder.pid), raising=False)
    pipe = os.stat(f"/proc/{holder.pid}/fd/0").st_ino
    real_inodes, real_fds = udp_buffers.udp_inodes, udp_buffers.socket_fds
    monkeypatch.setattr(udp_buffers, "udp_inodes", lambda pid: real_inodes(pid) | {pipe})
    monkeypatch.setattr(udp_buffers, "socket_fds",
                        lambda pid, inodes: [0, *real_fds(pid, inodes)])
    before = len(os.listdir("/proc/self/fd"))
    assert udp_buffers.enlarge(holder.pid, ifname="wg-test0") == 1  # the real socket
    assert len(os.listdir("/proc/self/fd")) == before  # the pipe's copy was closed
    monkeypatch.undo()
    assert not _untouched(holder.pid)
