"""The relay `bench scope` puts between two clouds: bytes intact, delay each way."""

from __future__ import annotations

import socket
import threading
import time

from atwill.bench.scope_wan import relay


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def _round_trip(port: int, payload: bytes) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            got += sock.recv(65536)
        return got, time.monotonic() - started


def test_the_relay_holds_each_direction_and_keeps_the_bytes() -> None:
    server, port = _echo_server()
    payload = bytes(range(256)) * 1024
    with server, relay(port) as wan:
        wan.delay = 0.05
        got, elapsed = _round_trip(wan.port, payload)
    assert got == payload
    assert 0.1 <= elapsed < 1.0  # 50 ms there, 50 ms back
