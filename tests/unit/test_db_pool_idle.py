"""A pooled PostgreSQL connection the network dropped without a word (a NAT's or load
balancer's idle timeout, a failover: nothing arrives on its socket) is pinged and
replaced once it has been idle longer than IDLE_PING, rather than failing the request's
first query; one reused within IDLE_PING is not pinged."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import make_url, text

from atwill.controller.db import session as db_session
from atwill.controller.db.session import Database
from atwill.devcloud import fresh_database
from tests.conftest import postgres_url


class Proxy:
    """A TCP relay to the server; sever() makes every relayed connection a dead one: the
    server side is closed, the client hears nothing until it sends, then gets a reset
    (what a peer that forgot the connection answers)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.severed: set[socket.socket] = set()
        self.clients: set[socket.socket] = set()
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.sent = bytearray()  # what the clients sent the server
        self.lock = threading.Lock()
        self._start(self._accept)

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, server]
                self.pairs.append((client, server))
                self.clients.add(client)
            self._start(self._pump, client, server)
            self._start(self._pump, server, client)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                with self.lock:
                    dead = src in self.severed
                    if src in self.clients and not dead:
                        self.sent += data
                if dead:  # the client spoke on a forgotten connection: reset it
                    src.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    src.close()
                    return
                dst.sendall(data)
        except OSError:
            pass

    def sever(self) -> None:
        with self.lock:
            for client, server in self.pairs:
                self.severed.add(client)
                server.shutdown(socket.SHUT_RDWR)  # its pump ends without telling client
            self.pairs = []

    def close(self) -> None:
        for sock in [self.listener, *self.sockets]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self.threads:
            thread.join(5)
        for sock in [self.listener, *self.sockets]:
            sock.close()


@pytest.fixture
def proxied() -> Iterator[tuple[Database, Proxy]]:
    admin = postgres_url()
    if not admin:
        pytest.skip("ATWILL_TEST_PG_URL is not set")
    with fresh_database(admin) as url:
        parsed = make_url(url)
        proxy = Proxy(parsed.host or "127.0.0.1", parsed.port or 5432)
        database = Database(parsed.set(host="127.0.0.1", port=proxy.port)
                            .render_as_string(hide_password=False))
        try:
            yield database, proxy
        finally:
            database.dispose()
            proxy.close()


def _backend(db: Database) -> int:
    with db.session() as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_an_idle_connection_dropped_silently_is_replaced(
        proxied: tuple[Database, Proxy], monkeypatch: pytest.MonkeyPatch) -> None:
    db, proxy = proxied
    pid = _backend(db)  # back in the pool
    proxy.sever()
    monkeypatch.setattr(db_session, "IDLE_PING", 0.0)  # as if it had been idle a minute
    assert _backend(db) != pid  # no error: the ping found it dead, the pool replaced it


def test_a_busy_connection_is_not_pinged(proxied: tuple[Database, Proxy]) -> None:
    db, proxy = proxied
    pid = _backend(db)
    proxy.sent.clear()
    assert _backend(db) == pid
    assert b"pg_backend_pid" in proxy.sent and b"SELECT 1" not in proxy.sent


def test_an_idle_connection_is_pinged(proxied: tuple[Database, Proxy],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    db, proxy = proxied
    pid = _backend(db)
    monkeypatch.setattr(db_session, "IDLE_PING", 0.0)
    proxy.sent.clear()
    assert _backend(db) == pid
    assert b"SELECT 1" in proxy.sent
