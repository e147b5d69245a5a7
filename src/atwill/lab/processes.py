"""Background processes inside a namespace, known by recorded PID, never by name.

A PID alone can be reused after the process dies, so each record also keeps the
process's start time from /proc; a record whose start time no longer matches
names some other process and is treated as dead.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .netns import Namespace

# Children started by this Python process, kept so they can be reaped (no
# zombies) and so Popen never warns that it was collected while running.
_CHILDREN: dict[int, subprocess.Popen] = {}
WIREGUARD_RUN = Path("/var/run/wireguard")
IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")


@dataclasses.dataclass
class Process:
    """A recorded background process: PID, start time, command line and log file."""

    pid: int
    start: int
    argv: list[str]
    log: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Process:
        return cls(**data)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a PID, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[19])


def reap() -> None:
    """Collect the exit status of our own children that have finished."""
    for pid, child in list(_CHILDREN.items()):
        if child.poll() is not None:
            del _CHILDREN[pid]


def alive(proc: Process) -> bool:
    """Whether the recorded process still runs (a zombie counts as dead)."""
    reap()
    stat = _stat(proc.pid)
    return stat is not None and stat[0] not in ("Z", "X") and stat[1] == proc.start


def spawn(ns: Namespace, argv: Sequence[str], log: Path,
          env: Mapping[str, str] | None = None) -> Process:
    """Start `argv` in the namespace in its own session, output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        child = subprocess.Popen(ns.argv(argv), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 env=dict(env) if env is not None else None)
    _CHILDREN[child.pid] = child
    stat = _stat(child.pid)
    # `ip netns exec` execs the command in place, so this PID is the command's.
    return Process(child.pid, stat[1] if stat else 0, list(argv), str(log))


def signal_process(proc: Process, sig: int) -> bool:
    """Send `sig` to the recorded process if it is still that process."""
    if not alive(proc):
        return False
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(procs: Iterable[Process], timeout: float) -> bool:
    """Wait until none of the processes is alive; True if they all went."""
    pending = list(procs)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if alive(p)]
        if pending:
            time.sleep(0.05)
    return not pending


def stop(proc: Process, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if signal_process(proc, signal.SIGTERM) and not wait_gone([proc], timeout):
        signal_process(proc, signal.SIGKILL)
        wait_gone([proc], 5)


def kill(proc: Process) -> None:
    """SIGKILL the process (a crash: no chance to clean up)."""
    if signal_process(proc, signal.SIGKILL):
        wait_gone([proc], 5)


def _wireguard_ifname(pid: int) -> str | None:
    """The interface a wireguard-go process serves, read from its command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = [w.decode(errors="replace") for w in argv if w]
    if words and os.path.basename(words[0]).startswith("wireguard-go"):
        names = [w for w in words[1:] if IFNAME.match(w)]
        return names[-1] if names else None
    return None


def kill_namespace(ns: Namespace, timeout: float = 10) -> list[int]:
    """SIGKILL every process in the namespace at once, until none is left.

    A killed wireguard-go cannot remove its control socket, which lives in the
    /var/run shared by every namespace; those sockets are removed here.
    """
    killed: list[int] = []
    sockets: set[str] = set()
    deadline = time.monotonic() + timeout
    while (pids := ns.pids()) and time.monotonic() < deadline:
        sockets.update(n for n in map(_wireguard_ifname, pids) if n)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        reap()
    if ns.pids():
        raise RuntimeError(f"processes survive in {ns.name}: {ns.pids()}")
    for name in sockets:
        for suffix in (".sock", ".name"):
            (WIREGUARD_RUN / f"{name}{suffix}").unlink(missing_ok=True)
    return killed
