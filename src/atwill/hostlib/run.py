"""Host commands, an undo stack for multi-step changes, and pidfile-tracked child processes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


class HostCommandError(RuntimeError):
    """A host command failed: it exited non-zero, timed out, or could not be started."""

    def __init__(self, command: Sequence[str], returncode: int, stderr: str) -> None:
        self.command = list(command)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"{' '.join(self.command)} exited {returncode}: {self.stderr}")


def run(args: Sequence[str], check: bool = True, input: str | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its text output; raise HostCommandError on failure if check."""
    try:
        done = subprocess.run(list(args), input=input, capture_output=True, text=True,
                              timeout=timeout, check=False,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError as exc:
        # 127 is what a shell reports for a missing command, so callers see one convention.
        raise HostCommandError(args, 127, str(exc)) from None
    except subprocess.TimeoutExpired:
        raise HostCommandError(args, -1, f"timed out after {timeout} s") from None
    if check and done.returncode != 0:
        raise HostCommandError(args, done.returncode, done.stderr)
    return done


class Reverter:
    """An undo stack: add an undo after each step; fail() undoes in reverse, success() keeps."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], object]] = []

    def add(self, fn: Callable[[], object]) -> None:
        """Remember how to undo the step that just succeeded."""
        self._undo.append(fn)

    def fail(self) -> None:
        """Run every undo, newest first; one failing undo does not stop the others."""
        while self._undo:
            fn = self._undo.pop()
            try:
                fn()
            except Exception:
                log.exception("undo step %r failed", fn)

    def success(self) -> None:
        """Keep the changes: forget the undo steps."""
        self._undo.clear()

    def __enter__(self) -> Reverter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.success()
        else:
            self.fail()


class ChildProcess:
    """A long-running child (in its own session) tracked by a pidfile, so it can be re-adopted."""

    def __init__(self, pidfile: Path, marker: str) -> None:
        # The marker must appear in the child's argv: a reused PID is never mistaken for ours.
        self.pidfile = pidfile
        self.marker = marker

    def pid(self) -> int | None:
        """The PID of our running child, or None."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if alive(pid) and self.marker in _argv(pid) else None

    def start(self, args: Sequence[str], logfile: Path,
              env: Mapping[str, str] | None = None,
              fds: Mapping[int, int] | None = None) -> int:
        """Start args in a new session with output to logfile, and write the pidfile;
        fds maps descriptor numbers in the child to ours it inherits (as dup2 does)."""
        full_env = {**os.environ, **(env or {})}
        actions: list[tuple] = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(logfile), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
            *((os.POSIX_SPAWN_DUP2, ours, theirs) for theirs, ours in (fds or {}).items()),
        ]
        try:
            # posix_spawn leaves no Popen object behind whose finaliser would warn while the
            # child outlives it, which is the normal case here (the agent may restart).
            pid = os.posix_spawnp(args[0], list(args), full_env, file_actions=actions,
                                  setsid=True)
        except OSError as exc:
            raise HostCommandError(args, 127, str(exc)) from None
        # Right after the spawn /proc/PID/cmdline can still be empty; wait so pid() knows it.
        deadline = time.monotonic() + 2
        while self.marker not in _argv(pid) and alive(pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        tmp = self.pidfile.with_suffix(".pid.tmp")
        tmp.write_text(f"{pid}\n")
        tmp.replace(self.pidfile)
        return pid

    def stop(self, timeout: float = 5.0) -> None:
        """Stop our child by PID (TERM, then KILL) and remove the pidfile."""
        pid = self.pid()
        if pid is not None:
            _terminate(pid, timeout)
        self.pidfile.unlink(missing_ok=True)


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Whether pid is a process that has not exited (zombies count as exited)."""
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _reap(pid: int) -> None:
    # Only a child of this process can be reaped; others are reaped by whoever adopted them.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _terminate(pid: int, timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.02)
    raise HostCommandError([f"kill {pid}"], -1, f"process {pid} survived SIGKILL")
