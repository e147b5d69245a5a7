"""Peer probes: a small UDP echo between agents on their overlay addresses.

UDP rather than ICMP: the agent then sees the probes its peers send it, which
is what its report must count (core/peer_view: a peer's report may never make
a node look more silent than the node sees itself), while the kernel answers
ICMP echo without telling anyone. It also needs no raw socket nor
net.ipv4.ping_group_range, and works the same in the lab's namespaces.

A probe carries a random nonce that the answer echoes, and only answers from a
peer's own overlay address with a nonce recently sent to it count: a forged
answer from elsewhere would make an isolated node believe it is not.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import socket
import threading
import time
from typing import Any

from ..core import peer_view

log = logging.getLogger("atwill.agent.peers")
PROBE_INTERVAL = 1.0
MAGIC = b"AWP1"
NONCES_KEPT = 4  # answers to the last few probes still count (a slow link)


class PeerProber:
    """Probes the peers named by the desired state's "ha" block, and answers theirs."""

    def __init__(self, me: str) -> None:
        self.me = me
        self._lock = threading.Lock()
        self._peers: dict[str, str] = {}  # node id -> overlay address
        self._port = peer_view.PROBE_PORT
        self._answered: dict[str, float] = {}  # an answer to our own probe (monotonic)
        self._seen: dict[str, float] = {}  # any sign: an answer or a probe from it
        self._nonces: dict[str, collections.deque[bytes]] = {}
        self._started = time.monotonic()
        self._sock: socket.socket | None = None
        self._bind_error: str | None = None

    def configure(self, block: dict[str, Any] | None) -> None:
        """Take the peers (and port) of the desired state's "ha" block."""
        peers = {str(p["id"]): str(p["address"]) for p in (block or {}).get("peers", ())
                 if p.get("id") and p.get("address") and p["id"] != self.me}
        with self._lock:
            self._peers = peers
            self._port = int((block or {}).get("port") or peer_view.PROBE_PORT)

    def answer_ages(self, now: float) -> dict[str, float | None]:
        """Seconds since each probed peer answered one of our probes (None: never)."""
        with self._lock:
            return {p: (now - self._answered[p] if p in self._answered else None)
                    for p in self._peers}

    def report(self, now: float) -> dict[str, float]:
        """The heartbeat's "peers": seconds since any sign of each peer. A peer never heard
        counts from the start of probing, an underestimate, as the controller needs."""
        with self._lock:
            return {p: round(now - self._seen.get(p, self._started), 2) for p in self._peers}

    def never_heard(self) -> list[str]:
        """The probed peers of which no sign ever came: their report is no evidence that
        they went silent (core/ha_confirm), only that the path never worked."""
        with self._lock:
            return sorted(p for p in self._peers if p not in self._seen)

    def run(self, stopping: threading.Event) -> None:
        """Probe every PROBE_INTERVAL and answer in between, until stopping."""
        next_probe = time.monotonic()
        while not stopping.is_set():
            sock = self._socket()
            if sock is None:
                stopping.wait(PROBE_INTERVAL)
                continue
            now = time.monotonic()
            if now >= next_probe:
                self._probe(sock)
                next_probe = now + PROBE_INTERVAL
            ready, _, _ = select.select([sock], [], [], max(0.0, next_probe - now))
            if ready:
                self._receive(sock)
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> socket.socket | None:
        if self._sock is not None:
            return self._sock
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # Every address: the overlay's may appear later, and peers probe only it.
            sock.bind(("0.0.0.0", self._port))
        except OSError as err:
            sock.close()
            if str(err) != self._bind_error:
                log.warning("peer probes: cannot listen on UDP port %d: %s", self._port, err)
                self._bind_error = str(err)
            return None
        sock.setblocking(False)
        self._sock = sock
        return sock

    def _probe(self, sock: socket.socket) -> None:
        with self._lock:
            targets = list(self._peers.items())
        for peer, address in targets:
            nonce = os.urandom(8).hex().encode()
            with self._lock:
                self._nonces.setdefault(peer, collections.deque(maxlen=NONCES_KEPT)).append(nonce)
            try:
                sock.sendto(b" ".join((MAGIC, b"P", self.me.encode(), nonce)),
                            (address, self._port))
            except OSError:
                pass  # no route while cut off: the silence is the answer

    def _receive(self, sock: socket.socket) -> None:
        while True:
            try:
                data, (source, port) = sock.recvfrom(512)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._handle(sock, data, source, port)

    def _handle(self, sock: socket.socket, data: bytes, source: str, port: int) -> None:
        parts = data.split(b" ")
        if len(parts) != 4 or parts[0] != MAGIC:
            return
        kind, peer, nonce = parts[1], parts[2].decode(errors="replace"), parts[3]
        now = time.monotonic()
        with self._lock:
            if self._peers.get(peer) != source:
                return  # not a peer we probe, or not from its overlay address
            if kind == b"P":
                self._seen[peer] = now
            elif kind == b"A" and nonce in self._nonces.get(peer, ()):
                self._answered[peer] = self._seen[peer] = now
            else:
                return
        if kind == b"P":
            try:
                sock.sendto(b" ".join((MAGIC, b"A", self.me.encode(), nonce)), (source, port))
            except OSError:
                pass
