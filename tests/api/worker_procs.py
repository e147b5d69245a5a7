"""Which controller worker process serves a connection, and which one leads.

Read from /proc only (no hook in the controller): a connection's server-side socket
is found in /proc/net/tcp by its client port, then in the file descriptors of the
`atwill serve` process's children; the leader is the holder of the flock on the state
directory's leader file, in /proc/locks.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
from pathlib import Path
from typing import Any

from tests.cloud import Cloud

LEADER_FILE = "controller-leader.lock"


def workers(cloud: Cloud) -> set[int]:
    assert cloud.proc is not None
    pid = cloud.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children}


def _server_socket_inode(server_port: int, client_port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if (int(local.rsplit(":", 1)[1], 16) == server_port
                    and int(remote.rsplit(":", 1)[1], 16) == client_port):
                return inode
    return None


def owner(cloud: Cloud, client_port: int) -> int | None:
    """The worker holding the server side of the connection from client_port."""
    inode = _server_socket_inode(cloud.port, client_port)
    if inode is None:
        return None
    wanted = f"socket:[{inode}]"
    for pid in workers(cloud):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == wanted:
                    return pid
            except OSError:
                continue
    return None


def leader(cloud: Cloud) -> int | None:
    """The pid holding the leader lock (None: nobody, as between a death and a takeover)."""
    ino = os.stat(cloud.state_dir / LEADER_FILE).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and not line.split(":", 1)[1].lstrip().startswith("->"):
            pid, dev_ino = fields[4], fields[5]
            if int(dev_ino.rsplit(":", 1)[1]) == ino:
                return int(pid)
    return None


class Connection:
    """One kept-alive HTTPS connection, and the worker process that accepted it."""

    def __init__(self, cloud: Cloud, context: ssl.SSLContext | None = None) -> None:
        context = context or ssl.create_default_context(cafile=cloud.cacert)
        self.http = http.client.HTTPSConnection("127.0.0.1", cloud.port, context=context,
                                                timeout=60)
        self.http.connect()  # the TLS handshake: a worker has accepted it
        self.pid = owner(cloud, self.http.sock.getsockname()[1])

    def call(self, method: str, path: str, token: str | None = None,
             body: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        sent = dict(headers or {})
        if token:
            sent["X-Auth-Token"] = token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        self.http.request(method, path, body=data, headers=sent)
        resp = self.http.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw.strip() else None

    def close(self) -> None:
        self.http.close()
