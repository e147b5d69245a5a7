"""The metadata service at 169.254.169.254 for this node's ports, in OpenStack format.

A child process (`python -m atwill.agent.net.metadata DIR`) with one listener per bridge
(SO_BINDTODEVICE), so a requester is known by its bridge, source address and MAC even when
networks overlap (nftables admits a request only from the port's own tap and MAC). It
answers from DIR/metadata.json, which the data plane rewrites from each plan, so it keeps
serving while the node is cut off from the controller.

It is the standard library's threading HTTP server, not an ASGI app on the controller's
stack: the process binds one socket per bridge with SO_BINDTODEVICE as root and then
drops root for good, answers a handful of GETs per boot, and should stay small on every
node (no event loop, no web framework to import in a process per node).
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from atwill.agent.net import metadata_signal
from atwill.agent.net.names import METADATA_IP
from atwill.hostlib import accounts
from atwill.hostlib.run import ChildProcess

log = logging.getLogger("atwill.agent.metadata")
VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30",
            "2016-10-06", "2017-02-22", "2018-08-27", "latest")


def document(entry: dict[str, Any], path: str) -> tuple[str, str] | None:
    """(content type, body) for a path, given the requester's metadata entry; None if unknown."""
    meta = entry.get("meta_data", entry)
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts == ["openstack"]:
        return "text/plain", "\n".join(VERSIONS) + "\n"
    if len(parts) >= 2 and parts[0] == "openstack" and parts[1] in VERSIONS:
        rest = parts[2:]
        files = {"meta_data.json": meta, "network_data.json": entry.get("network_data", {}),
                 "vendor_data.json": entry.get("vendor_data", {}),
                 "vendor_data2.json": entry.get("vendor_data2", {})}
        if not rest:
            names = list(files) + (["user_data"] if "user_data" in entry else [])
            return "text/plain", "\n".join(names) + "\n"
        if rest == ["user_data"]:
            return ("application/octet-stream", entry["user_data"]) \
                if "user_data" in entry else None
        if len(rest) == 1 and rest[0] in files:
            return "application/json", json.dumps(files[rest[0]])
        return None
    if len(parts) >= 2 and parts[1] == "meta-data":
        ec2 = {"instance-id": meta.get("uuid", ""), "hostname": meta.get("hostname", ""),
               "local-hostname": meta.get("hostname", ""),
               "local-ipv4": entry.get("local_ipv4", ""),
               "placement/availability-zone": meta.get("availability_zone", "")}
        key = "/".join(parts[2:])
        if not key:
            return "text/plain", "\n".join(ec2) + "\n"
        return ("text/plain", str(ec2[key])) if key in ec2 else None
    if len(parts) == 2 and parts[1] == "user-data" and "user_data" in entry:
        return "application/octet-stream", entry["user_data"]
    return None


class Store:
    """metadata.json, re-read when it changes: {bridge: {fixed ip: entry}}."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime = -1.0
        self._data: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def lookup(self, bridge: str, ip: str) -> dict[str, Any] | None:
        """The entry for a requester, or None."""
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime
                if mtime != self._mtime:
                    self._data, self._mtime = json.loads(self.path.read_text()), mtime
            except (OSError, ValueError):
                pass
            return self._data.get(bridge, {}).get(ip)


def neighbour_mac(bridge: str, ip: str, table: Path = Path("/proc/net/arp")) -> str | None:
    """The MAC the kernel resolved for ip on bridge (the requester's, since it answered)."""
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[0] == ip and fields[5] == bridge:
            return fields[3].lower()
    return None


def caller_entry(store: Store, bridge: str, ip: str) -> dict[str, Any] | None:
    """The entry of the port at (bridge, ip) if the caller also has that port's MAC."""
    entry = store.lookup(bridge, ip)
    # Bound to the port, not the address: the data plane lets only the port's own tap with
    # its own MAC reach us from its address, and the neighbour MAC must be the port's too.
    if entry is None or entry.get("mac") != neighbour_mac(bridge, ip):
        return None
    return entry


def _server(store: Store, bridge: str, port: int,
            directory: Path | None = None) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # seconds: a guest that stops sending midway holds no thread for ever
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            entry = caller_entry(store, bridge, self.client_address[0])
            answer = document(entry, self.path) if entry is not None else None
            if answer is None:
                self.send_error(404)
                return
            body = answer[1].encode()
            self.send_response(200)
            self.send_header("Content-Type", answer[0])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            """A wait condition signal from a known port, relayed (metadata_signal)."""
            size = metadata_signal.body_size(self.headers.get("Content-Length"))
            if (directory is None or not metadata_signal.is_signal(self.path)
                    or caller_entry(store, bridge, self.client_address[0]) is None):
                self.send_error(404)
                return
            if size is None:
                self.send_error(413 if (self.headers.get("Content-Length") or "").strip()
                                .isdigit() else 400)
                return
            status, body = metadata_signal.forward(
                directory, self.path, self.headers.get("X-Auth-Token", ""),
                self.rfile.read(size))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def server_bind(self) -> None:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, bridge.encode())
            self.socket.bind(self.server_address)

    return Server((METADATA_IP, port), Handler)


def serve(directory: Path, port: int = 80, user: str | None = None) -> None:
    """Serve every bridge listed in directory/bridges until killed; with user, as that
    user once the listeners are bound (port 80 and SO_BINDTODEVICE need root)."""
    store = Store(directory / "metadata.json")
    bridges = json.loads((directory / "bridges").read_text())
    servers = [_server(store, bridge, port, directory) for bridge in bridges]
    # The agent waits for this before it calls the plan applied: a guest that asks at once
    # must not meet a closed port.
    (directory / "listening").write_text(str(os.getpid()))
    if user is not None:
        drop_privileges(user)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def drop_privileges(user: str) -> None:
    """Become user for good: no supplementary groups, no capabilities, no way back."""
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    if os.getuid() != entry.pw_uid or os.geteuid() != entry.pw_uid:
        raise SystemExit(f"metadata service: could not become {user}")


class MetadataService:
    """The metadata child process of one data plane, its files under directory."""

    def __init__(self, directory: Path, controller_url: str | None = None,
                 ca: Path | None = None) -> None:
        self.directory = directory
        # Where guests' wait condition signals are relayed (metadata_signal).
        self.controller_url, self.ca = controller_url, ca
        self.child = ChildProcess(directory / "pid", f"{directory}")
        self._warned = False

    def pid(self) -> int | None:
        """The server's PID, or None."""
        return self.child.pid()

    def converge(self, entries: dict[str, dict[str, Any]]) -> None:
        """Publish entries; (re)start the server when the bridges changed (or were remade)."""
        account = self._account()
        # The entries hold every instance's user data: the server's group reads them, and
        # no other user (0750 directory).
        accounts.share_directory(self.directory, account)
        accounts.publish(self.directory / "metadata.json", json.dumps(entries, sort_keys=True))
        for name, text in metadata_signal.controller_files(self.controller_url,
                                                           self.ca).items():
            accounts.publish(self.directory / name, text)
        # Listeners are bound to interface indexes: a re-created bridge needs a restart.
        bridges = json.dumps({b: socket.if_nametoindex(b) for b in sorted(entries)})
        path = self.directory / "bridges"
        same = path.exists() and path.read_text() == bridges
        if same and self.child.pid() is not None:
            return
        self.child.stop()
        if not entries:
            return
        path.write_text(bridges)
        user = [account.name] if account is not None else []
        marker = self.directory / "listening"
        marker.unlink(missing_ok=True)
        self.child.start([sys.executable, "-m", "atwill.agent.net.metadata",
                          str(self.directory), *user], self.directory / "log")
        self._await_listening(marker)

    def _await_listening(self, marker: Path, timeout: float = 15.0) -> None:
        """Wait (bounded) until the child has bound its listeners, or has died."""
        deadline = time.monotonic() + timeout
        while not marker.exists() and time.monotonic() < deadline:
            if self.child.pid() is None:
                log.warning("the metadata service ended at start; see %s",
                            self.directory / "log")
                return
            time.sleep(0.05)
        if not marker.exists():
            log.warning("the metadata service is not listening after %.0f s", timeout)

    def stop(self) -> None:
        """Stop the server by PID."""
        self.child.stop()

    def _account(self) -> accounts.Account | None:
        """The server's own account, if it can reach the directory (else it stays root)."""
        if not accounts.searchable(self.directory.parent):
            if not self._warned:
                self._warned = True
                log.warning("the metadata service runs as root: other users cannot pass "
                            "through %s", self.directory.parent)
            return None
        return accounts.unprivileged(accounts.METADATA_USER)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), user=sys.argv[2] if len(sys.argv) > 2 else None)
