"""A minimal synchronous QMP client: one UNIX socket, JSON lines, bounded waits.

Hand-written rather than QEMU's `qemu.qmp`: that library is asyncio-based, and its
synchronous wrapper (`qemu.qmp.legacy`) runs an event loop per connection, which the
agent's threads (one lane per instance, the heartbeat, snapshots) would each have to own;
it also buffers what QEMU sends without a bound. The agent needs only connect, negotiate,
execute with a deadline, wait for an event and pass a descriptor (getfd), every read
bounded in time and size, every malformed answer a QMPError: about a hundred lines.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

MAX_MESSAGE = 1 << 20


class QMPError(RuntimeError):
    """QEMU answered with an error, closed the socket, or did not answer in time."""

    def __init__(self, message: str, error_class: str = "") -> None:
        self.error_class = error_class
        super().__init__(message)


class QMP:
    """A QMP session; use as a context manager: greeting and capabilities on entry."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._next_id = 0

    def __enter__(self) -> QMP:
        self.connect()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def connect(self) -> None:
        """Connect, read the greeting and leave capabilities negotiation mode."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError as exc:
            sock.close()
            raise QMPError(f"cannot connect to {self.path}: {exc}") from None
        self._sock = sock
        try:
            greeting = self._read(time.monotonic() + self.timeout)
            if "QMP" not in greeting:
                raise QMPError(f"no QMP greeting from {self.path}: {greeting}")
            self.execute("qmp_capabilities")
        except BaseException:
            # No greeting in time (a process still starting, a loaded host) or a refused
            # negotiation: the context manager's exit never runs, so close here.
            self.close()
            raise

    def close(self) -> None:
        """Close the socket; QEMU then accepts the next client."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def execute(self, command: str, arguments: dict[str, Any] | None = None,
                timeout: float | None = None, fd: int | None = None) -> Any:
        """Run command and return its "return" value; events seen meanwhile are kept.
        With fd, the descriptor travels with the command (SCM_RIGHTS), as getfd needs."""
        self._next_id += 1
        ident = f"atwill-{self._next_id}"
        message: dict[str, Any] = {"execute": command, "id": ident}
        if arguments:
            message["arguments"] = arguments
        self._send(message, fd)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            reply = self._read(deadline)
            if "event" in reply:
                self.events.append(reply)
            elif reply.get("id") == ident:
                if "error" in reply:
                    error = reply["error"] if isinstance(reply["error"], dict) else {}
                    raise QMPError(f"{command}: {error.get('desc', reply['error'])}",
                                   str(error.get("class", "")))
                return reply.get("return")

    def wait_event(self, names: Iterable[str], timeout: float) -> dict[str, Any]:
        """The first event (already seen or arriving within timeout) named in names."""
        wanted = set(names)
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self.events):
                if event["event"] in wanted:
                    return self.events.pop(index)
            reply = self._read(deadline)
            if "event" in reply:
                self.events.append(reply)

    def _send(self, message: dict[str, Any], fd: int | None = None) -> None:
        if self._sock is None:
            raise QMPError("not connected")
        data = json.dumps(message).encode() + b"\n"
        try:
            if fd is not None:
                # QEMU takes the descriptor that arrived with the command's bytes.
                sent = socket.send_fds(self._sock, [data], [fd])
                data = data[sent:]
            self._sock.sendall(data)
        except OSError as exc:
            raise QMPError(f"QMP send failed: {exc}") from None

    def _read(self, deadline: float) -> dict[str, Any]:
        if self._sock is None:
            raise QMPError("not connected")
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPError(f"no answer from {self.path} in time")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise QMPError(f"no answer from {self.path} in time") from None
            except OSError as exc:
                raise QMPError(f"QMP read failed: {exc}") from None
            if not chunk:
                raise QMPError(f"QEMU closed {self.path}", "Closed")
            self._buffer += chunk
            if len(self._buffer) > MAX_MESSAGE and b"\n" not in self._buffer:
                # QEMU's answers are small; a guest that took over its QEMU must not make
                # the root agent buffer without end.
                raise QMPError(f"QMP message from {self.path} over {MAX_MESSAGE} bytes")
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError:
            raise QMPError(f"QMP sent something that is not JSON on {self.path}") from None
        if not isinstance(message, dict):
            raise QMPError(f"QMP sent a JSON {type(message).__name__}, not an object")
        return message


def run_state(qmp: QMP) -> str:
    """The guest's run state (query-status), checked: it comes from a process the guest
    may control, and a malformed answer must be a QMPError like any other failure."""
    reply = qmp.execute("query-status")
    status = reply.get("status") if isinstance(reply, dict) else None
    if not isinstance(status, str):
        raise QMPError("query-status answered without a status")
    return status
