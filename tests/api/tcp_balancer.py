"""A TCP pass-through load balancer for tests: each connection goes to the first backend
that accepts it (TLS stays end to end, as HAProxy's `mode tcp` with health checks off
would forward it), so a stopped controller is skipped."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpBalancer:
    def __init__(self, port: int, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.2)
        self.closed = threading.Event()
        self.picked: list[int] = []  # the backend port of each connection, in order
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.closed.set()
        self.thread.join(5)
        self.listener.close()
        with self.lock:
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        for host, port in self.backends:
            try:
                upstream = socket.create_connection((host, port), timeout=5)
            except OSError:
                continue
            self.picked.append(port)
            break
        with self.lock:
            self.open.update(s for s in (client, upstream) if s is not None)
        try:
            if upstream is not None:
                upstream.settimeout(None)
                client.settimeout(None)
                back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
                back.start()
                _pipe(client, upstream)
                back.join(60)
        finally:
            with self.lock:
                for sock in (client, upstream):
                    if sock is not None:
                        self.open.discard(sock)
                        sock.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
