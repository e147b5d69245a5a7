"""TCP probes for the security-group timing: a listener, and a connector that notes a change.

    python -m atwill.bench.tcpprobe listen PORT [PORT ...]
    python -m atwill.bench.tcpprobe open ADDRESS PORT TIMEOUT
    python -m atwill.bench.tcpprobe closed ADDRESS PORT TIMEOUT

`open` starts a new connection every INTERVAL (each a fresh SYN, so a dropped one is
not retried by the kernel seconds later) and reports when the first one completed;
`closed` does the same and reports the start of the first attempt that got no answer
within GIVE_UP (a removed rule drops new SYNs; established flows would stay).
Times are on the monotonic clock, which every namespace shares. Each prints
"started <t>" first, then one JSON line.
"""

from __future__ import annotations

import errno
import json
import selectors
import socket
import sys
import time
from typing import Any

INTERVAL = 0.05
GIVE_UP = 0.5


def listen(ports: list[int]) -> None:
    """Accept and close on every port, forever."""
    sel = selectors.DefaultSelector()
    for port in ports:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", port))
        server.listen(64)
        sel.register(server, selectors.EVENT_READ)
    print(f"started {time.monotonic()}", flush=True)
    while True:
        for key, _ in sel.select():
            conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
            conn.close()


def _attempt(sel: selectors.BaseSelector, address: str, port: int) -> None:
    sock = socket.socket()
    sock.setblocking(False)
    code = sock.connect_ex((address, port))
    if code not in (0, errno.EINPROGRESS):
        sock.close()
        return
    sel.register(sock, selectors.EVENT_WRITE, time.monotonic())


def watch(mode: str, address: str, port: int, timeout: float) -> dict[str, Any]:
    """Connect every INTERVAL until the first success (open) or first silence (closed)."""
    sel = selectors.DefaultSelector()
    start = time.monotonic()
    print(f"started {start}", flush=True)
    result: dict[str, Any] = {"start": start, "at": None, "attempts": 0, "answered": 0}
    next_try = start
    while result["at"] is None and time.monotonic() < start + timeout:
        now = time.monotonic()
        if now >= next_try:
            _attempt(sel, address, port)
            result["attempts"] += 1
            next_try = now + INTERVAL
        for key, _ in sel.select(max(0.0, next_try - time.monotonic())):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            sel.unregister(sock)
            ok = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            sock.close()
            if ok:
                result["answered"] += 1
                if mode == "open" and result["at"] is None:
                    result["at"] = time.monotonic()
        if mode == "closed":
            for key in list(sel.get_map().values()):
                if time.monotonic() - key.data > GIVE_UP:
                    # The earliest silent attempt: the rule was gone when it was sent.
                    sel.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]
                    if result["at"] is None or key.data < result["at"]:
                        result["at"] = key.data
    for key in list(sel.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    return result


if __name__ == "__main__":
    if sys.argv[1] == "listen":
        listen([int(p) for p in sys.argv[2:]])
    else:
        print(json.dumps(watch(sys.argv[1], sys.argv[2], int(sys.argv[3]),
                               float(sys.argv[4]))), flush=True)
