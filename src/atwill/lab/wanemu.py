"""The WAN emulator process, for kernels without netem: a userspace switch with delay and loss.

    ip netns exec awl-LAB-wan python -m atwill.lab.wanemu CONFIG STATUS

It runs in the WAN namespace with one AF_PACKET socket per WAN-side veth (none
of them bridged, so nothing is forwarded twice) and one epoll loop; the logic
is wanswitch.Wan. CONFIG (JSON, written by wanctl) names the ports and their
delay and loss; SIGHUP re-reads it, and after every (re)load STATUS is written
with the config's generation, so the lab knows when a change is live.

Sockets use PACKET_VNET_HDR: a frame sent by a host with its checksum left to
"hardware" carries that in the header, and the kernel completes it when the
frame goes out again. The hosts' wan0 have gso_max_segs 1, so frames are single
packets and the emulated loss applies per packet.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from .wanswitch import QUEUE_LIMIT, Link, Wan

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
VNET_HDR_LEN = 10
SOCKET_BUFFER = 4 << 20
READ_BATCH = 64
STATUS_EVERY = 1.0
GONE = (errno.ENODEV, errno.ENXIO)


def open_port(ifname: str) -> socket.socket:
    """A promiscuous raw socket on one interface that does not see its own sends."""
    # Protocol 0 until bound, so no frame of another interface is ever queued.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        try:
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        except OSError:
            pass  # before Linux 4.20; recvfrom's pkttype filters them instead
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        sock.bind((ifname, ETH_P_ALL))
        mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), PACKET_MR_PROMISC, 0, b"")
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def read_config(path: Path) -> tuple[int, int, dict[str, Link]]:
    """(generation, queue limit, links by port) from the JSON settings file."""
    data = json.loads(path.read_text())
    links = {port: Link(float(v.get("delay", 0)), float(v.get("loss", 0)))
             for port, v in data.get("ports", {}).items()}
    return int(data.get("generation", 0)), int(data.get("limit", QUEUE_LIMIT)), links


class Emulator:
    """The sockets and the loop around a Wan."""

    def __init__(self, config: Path, status: Path) -> None:
        self.config, self.status = config, status
        self.wan = Wan({})
        self.generation = 0
        self.socks: dict[str, socket.socket] = {}
        self.ifindex: dict[str, int] = {}
        self.by_fd: dict[int, str] = {}
        self.errors: dict[str, str] = {}
        self.epoll = select.epoll()
        self.buf = bytearray(1 << 17)
        self.reload = self.running = True
        self._dirty = True

    # ports --------------------------------------------------------------------
    def _close(self, port: str) -> None:
        sock = self.socks.pop(port, None)
        if sock is not None:
            self.by_fd.pop(sock.fileno(), None)
            self.epoll.unregister(sock)
            sock.close()
        self.ifindex.pop(port, None)

    def _open(self, port: str) -> None:
        try:
            index = socket.if_nametoindex(port)
            if self.ifindex.get(port) == index:
                return
            self._close(port)  # a new interface of the same name
            sock = open_port(port)
        except OSError as error:
            self._close(port)
            self.errors[port] = str(error)
            return
        self.errors.pop(port, None)
        self.socks[port], self.ifindex[port] = sock, index
        self.by_fd[sock.fileno()] = port
        self.epoll.register(sock, select.EPOLLIN)

    def load(self) -> None:
        """Re-read the settings: open new ports, close removed ones, then report."""
        self.reload = False
        generation, limit, links = read_config(self.config)
        for port in set(self.socks) - set(links):
            self._close(port)
        for port in links:
            self._open(port)
        self.wan.limit = limit
        self.wan.configure(links)
        self.generation = generation
        self.write_status()

    # frames -------------------------------------------------------------------
    def read(self, port: str) -> None:
        sock = self.socks[port]
        for _ in range(READ_BATCH):
            try:
                size, addr = sock.recvfrom_into(self.buf)
            except BlockingIOError:
                return
            except OSError as error:  # ENETDOWN: partitioned; ENODEV: host gone
                if error.errno in GONE:
                    self._close(port)
                return
            if addr[2] == PACKET_OUTGOING or size < VNET_HDR_LEN + 14:
                continue
            self.wan.receive(time.monotonic(), port, bytes(self.buf[:size]), VNET_HDR_LEN)
            self._dirty = True

    def send_due(self) -> None:
        for port, frame in self.wan.pop_due(time.monotonic()):
            sock = self.socks.get(port)
            try:
                ok = sock is not None and sock.send(frame) == len(frame)
            except OSError:  # the link is down or the buffer is full: the frame is lost
                ok = False
            self.wan.sent(port, ok)

    # status -------------------------------------------------------------------
    def write_status(self) -> None:
        ports: dict[str, Any] = {}
        for port, link in self.wan.links.items():
            ports[port] = {"open": port in self.socks, "error": self.errors.get(port),
                           "delay": link.delay, "loss": link.loss,
                           **vars(self.wan.counters[port])}
        data = {"pid": os.getpid(), "generation": self.generation,
                "queued": self.wan.queued(), "ports": ports}
        tmp = self.status.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, self.status)
        self._dirty = False

    # the loop -----------------------------------------------------------------
    def run(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "reload", True))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: setattr(self, "running", False))
        self.epoll.register(wake_r, select.EPOLLIN)
        next_status = time.monotonic() + STATUS_EVERY
        while self.running:
            if self.reload:
                self.load()
            now = time.monotonic()
            due = self.wan.next_due()
            timeout = min(next_status, due if due is not None else next_status) - now
            for fd, _ in self.epoll.poll(max(timeout, 0)):
                if fd == wake_r:
                    while _drain(wake_r):
                        pass
                elif fd in self.by_fd:
                    self.read(self.by_fd[fd])
            self.send_due()
            if time.monotonic() >= next_status:
                if self._dirty:
                    self.write_status()
                next_status = time.monotonic() + STATUS_EVERY


def _drain(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m atwill.lab.wanemu CONFIG STATUS", file=sys.stderr)
        return 2
    Emulator(Path(args[0]), Path(args[1])).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
