"""The QMP client against a scripted fake QEMU on a UNIX socket."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from atwill.agent.hypervisor.qmp import MAX_MESSAGE, QMP, QMPError, run_state

GREETING = {"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}}
Script = Callable[[dict[str, Any]], list[dict[str, Any]]]


@pytest.fixture
def fake_qemu() -> Iterator[Callable[[Script], Path]]:
    """serve(script): a socket whose server answers each command with script(command)."""
    # pytest's tmp_path can exceed the 108-byte limit of a UNIX socket path.
    tmp = tempfile.TemporaryDirectory(prefix="awt-qmp-")
    threads: list[threading.Thread] = []
    servers: list[socket.socket] = []
    received: list[dict[str, Any]] = []

    def serve(script: Script) -> Path:
        path = Path(tmp.name) / "qmp.sock"
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        server.listen(1)
        servers.append(server)

        def loop() -> None:
            try:
                talk()
            except OSError:
                pass  # the client hung up on us (as it does on a flood): the test decides

        def talk() -> None:
            conn, _ = server.accept()
            with conn, conn.makefile("rwb") as stream:
                stream.write(json.dumps(GREETING).encode() + b"\n")
                stream.flush()
                for line in stream:
                    command = json.loads(line)
                    received.append(command)
                    for reply in script(command):
                        # bytes go out as they are: what a guest that took over QEMU sends
                        raw = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                        stream.write(raw + b"\n")
                    stream.flush()

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        threads.append(thread)
        return path

    serve.received = received  # type: ignore[attr-defined]
    yield serve
    for server in servers:
        server.close()
    for thread in threads:
        thread.join(2)
    tmp.cleanup()


def answer(command: dict[str, Any]) -> list[dict[str, Any]]:
    if command["execute"] == "query-status":
        return [{"event": "STOP", "timestamp": {}},
                {"return": {"status": "paused", "running": False}, "id": command["id"]}]
    if command["execute"] == "bogus":
        return [{"error": {"class": "CommandNotFound", "desc": "no bogus"}, "id": command["id"]}]
    if command["execute"] == "slow":
        return []
    if command["execute"] == "system_reset":
        return [{"return": {}, "id": command["id"]}, {"event": "RESET", "timestamp": {}}]
    return [{"return": {}, "id": command["id"]}]


def test_capabilities_then_commands_skipping_events(fake_qemu: Any) -> None:
    with QMP(fake_qemu(answer), timeout=2) as qmp:
        assert qmp.execute("query-status") == {"status": "paused", "running": False}
        assert [event["event"] for event in qmp.events] == ["STOP"]
    names = [command["execute"] for command in fake_qemu.received]
    assert names == ["qmp_capabilities", "query-status"]
    # Every command carries an id, and the answer is matched to it.
    assert len({command["id"] for command in fake_qemu.received}) == 2


def test_errors_carry_qemus_class(fake_qemu: Any) -> None:
    with QMP(fake_qemu(answer), timeout=2) as qmp, pytest.raises(QMPError) as caught:
        qmp.execute("bogus")
    assert caught.value.error_class == "CommandNotFound"
    assert "no bogus" in str(caught.value)


def test_a_silent_qemu_times_out(fake_qemu: Any) -> None:
    with QMP(fake_qemu(answer), timeout=2) as qmp, pytest.raises(QMPError, match="in time"):
        qmp.execute("slow", timeout=0.2)


def test_wait_event(fake_qemu: Any) -> None:
    with QMP(fake_qemu(answer), timeout=2) as qmp:
        qmp.execute("system_reset")
        assert qmp.wait_event({"RESET"}, timeout=1)["event"] == "RESET"
        with pytest.raises(QMPError, match="in time"):
            qmp.wait_event({"SHUTDOWN"}, timeout=0.2)


def test_no_socket_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(QMPError, match="cannot connect"):
        QMP(tmp_path / "none.sock", timeout=1).connect()


def hostile(command: dict[str, Any]) -> list[Any]:
    name = command["execute"]
    if name == "query-status":
        return [{"return": ["not", "a", "status"], "id": command["id"]}]
    if name == "garbage":
        return [b"{not json"]
    if name == "array":
        return [b"[1, 2]"]
    if name == "flood":
        return [b"x" * (MAX_MESSAGE + 65536)]
    if name == "odd-error":
        return [{"error": "just a string", "id": command["id"]}]
    return [{"return": {}, "id": command["id"]}]


@pytest.mark.parametrize("command", ["garbage", "array", "flood", "odd-error"])
def test_a_hostile_qemu_gives_qmp_errors_only(fake_qemu: Any, command: str) -> None:
    # Anything else (ValueError, TypeError, MemoryError) would escape the agent's state
    # queries and stop its heartbeat for every instance of the node.
    with QMP(fake_qemu(hostile), timeout=2) as qmp, pytest.raises(QMPError):
        qmp.execute(command)


def test_a_malformed_run_state_is_a_qmp_error(fake_qemu: Any) -> None:
    with QMP(fake_qemu(hostile), timeout=2) as qmp, pytest.raises(QMPError, match="status"):
        run_state(qmp)


@pytest.mark.parametrize("first_line", [None, b'{"not": "a greeting"}\n'])
def test_a_failed_greeting_closes_the_socket(first_line: bytes | None) -> None:
    """A QEMU still starting (no greeting in time) or a stranger on the socket: the failed
    connect closes its socket (the context manager's exit never runs); seen on a loaded
    host as qemu-storage-daemon's readiness loop leaking one socket a try."""
    seen: list[bytes] = []
    with tempfile.TemporaryDirectory(prefix="awt-qmp-") as tmp:
        path = Path(tmp) / "qmp.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(str(path))
            server.listen(1)

            def peer() -> None:
                conn, _ = server.accept()
                with conn:
                    if first_line is not None:
                        conn.sendall(first_line)
                    conn.settimeout(5)
                    seen.append(conn.recv(100))  # b"" once the client's end is closed

            thread = threading.Thread(target=peer, daemon=True)
            thread.start()
            monitor = QMP(path, timeout=0.3)
            with pytest.raises(QMPError):
                monitor.__enter__()
            thread.join(10)
    assert monitor._sock is None
    assert seen == [b""]
