"""NBD exports: one qemu-storage-daemon per (volume, client node), TLS from the cluster CA.

Each daemon serves one volume to the one node whose certificate (cluster CA, CN = the
node's name) it admits: `tls-creds-x509` with verify-peer and an `authz-simple` on that
DN. The controller's list of removed nodes' certificates is loaded as ca-crl.pem, since a
new node may join under a removed node's name: the daemon is restarted with a changed
list once its client is not connected (a connected client was admitted as the one node
the export is for, and a removal revokes that node's exports at once).
Revoking an export stops its daemon by PID, which drops the client's connection at once;
that is storage fencing. Each export keeps a directory (its record, pidfile, QMP
socket, TLS files, log) under storage/.exports, so an agent that restarts finds its
daemons and their ports again.

The daemon runs as uid 0 without any capability (bounding set, inheritable and ambient
sets emptied, no_new_privs). QEMU 7.2's storage daemon cannot open a volume it is handed
as a descriptor (its QMP has no add-fd and its file driver no fd option), so another
user could only open the volume by path, which would need the 0600 root files and the
node's key opened up to it. Without capabilities it still opens root's files, but no
file of any other user (guest disks, helpers' files), signals no other user's process,
and cannot mount, load modules or use raw sockets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
import socket
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from atwill import pki
from atwill.agent.hypervisor.qmp import QMP, QMPError
from atwill.core import volume_handover
from atwill.core.lvm import image_blockdevs
from atwill.hostlib.run import ChildProcess, HostCommandError, Reverter

log = logging.getLogger("atwill.agent.storage")

DAEMON = "qemu-storage-daemon"
PORTS = range(10809, 11000)
NODE = "vol0"
# No capability at all, and none to regain through a setuid program.
NO_CAPS = ["setpriv", "--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all",
           "--bounding-set=-all", "--"]
_CN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_PSK_LINE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}:[0-9a-f]{64}")
# A daemon that is alive but has not answered its QMP yet is waited for this long (one that
# exits is given up at once): under load (two cores shared with TCG guests) its start
# took more than 10 s once (CI, test_export_tls), an empty log, answered in 3 s when rerun.
START_TIMEOUT = 30.0
# The daemon's listening socket, bound by the agent: QEMU 7.2's NBD server leaves Nagle's
# algorithm on for its clients, and its small replies then wait for the client's delayed
# ACK (~40 ms) behind any reply not yet acknowledged: 4 KiB requests ran at ~400 IOPS.
# An accepted socket inherits TCP_NODELAY from the listening one.
LISTEN_FD = 3
# The ciphers in the export's order, whatever the client prefers. GnuTLS 3.7 binds an
# external PSK to SHA-256, so TLS 1.3 with an attachment's key cannot use AES-256-GCM
# (a SHA-384 suite) and NORMAL's client order falls to ChaCha20-Poly1305, which has no
# AES-NI to help it: it halved sequential throughput (bench volumes). All are AEADs.
TLS_PRIORITY = ("NORMAL:%SERVER_PRECEDENCE:-CIPHER-ALL:"
                "+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305")


@dataclasses.dataclass(frozen=True)
class Export:
    """One volume served to one client node."""

    volume_id: str
    node_id: str
    client_cn: str
    host: str
    port: int
    # The attachments' own identities ("identity:hexkey", QEMU's keys.psk lines): when
    # given, the export admits these keys alone, not the node's certificate.
    psk: tuple[str, ...] = ()


def export_key(volume_id: str, node_id: str) -> str:
    """The export's directory name: short, as the QMP socket path inside must be."""
    return hashlib.sha256(f"{volume_id}/{node_id}".encode()).hexdigest()[:16]


def choose_port(taken: set[int], ports: range = PORTS, preferred: int | None = None,
                free: Callable[[int], bool] = lambda port: True) -> int:
    """preferred if it is in ports and not taken, else the lowest port neither taken nor busy."""
    if preferred is not None and preferred in ports and preferred not in taken:
        return preferred
    for port in ports:
        if port not in taken and free(port):
            return port
    raise RuntimeError(f"no free export port in {ports.start}-{ports.stop - 1}")


def opt(value: str) -> str:
    """value as one QEMU option value (a comma is doubled, or it would end the value)."""
    return value.replace(",", ",,")


def client_dn(name: str) -> str:
    """The distinguished name QEMU's authz-simple compares (GnuTLS's form of the subject
    of a node certificate, which holds the node's name alone)."""
    if not _CN.fullmatch(name):
        raise ValueError(f"not a node name: {name!r}")
    return f"CN={name}"


def psk_lines(given: object) -> tuple[str, ...]:
    """The desired export's attachment keys as keys.psk lines; ValueError if malformed."""
    if given is None:
        return ()
    if not isinstance(given, list) or not all(
            isinstance(line, str) and _PSK_LINE.fullmatch(line) for line in given):
        raise ValueError("an export's psk must be a list of identity:hexkey")
    return tuple(sorted(given))


def daemon_argv(export: Export, image: Path, directory: Path) -> list[str]:
    """The qemu-storage-daemon command line serving image as export.volume_id, on the
    socket listener(export.host, export.port) made, handed to it as LISTEN_FD."""
    socket.inet_pton(socket.AF_INET6 if ":" in export.host else socket.AF_INET, export.host)
    tls = opt(str(directory / "tls"))
    if export.psk:
        # keys.psk holds the keys of the attachments made to this export, nothing else.
        creds = [f"tls-creds-psk,id=tls0,dir={tls},endpoint=server,priority={TLS_PRIORITY}"]
        authz = ""
    else:
        identity = client_dn(export.client_cn)
        creds = [f"tls-creds-x509,id=tls0,dir={tls},endpoint=server,verify-peer=on,"
                 f"priority={TLS_PRIORITY}",
                 "--object", f"authz-simple,id=authz0,identity={opt(identity)}"]
        authz = ",tls-authz=authz0"
    return [
        *NO_CAPS, DAEMON,
        "--chardev", qmp_chardev(directory),
        "--monitor", "chardev=qmp0",
        "--object", *creds,
        # A qcow2 file, or an LVM thin LV (/dev/VG/LV) as raw on host_device.
        *(word for value in image_blockdevs(str(image)) for word in ("--blockdev", value)),
        "--nbd-server", f"addr.type=fd,addr.str={LISTEN_FD},tls-creds=tls0{authz}",
        "--export", f"type=nbd,id=exp0,node-name={NODE},name={export.volume_id},writable=on",
    ]


def listener(host: str, port: int) -> socket.socket:
    """A socket listening on host:port with TCP_NODELAY, which its connections inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(16)
    except OSError:
        sock.close()
        raise
    return sock


def export_args(volume_id: str) -> dict[str, object]:
    """QMP block-export-add's arguments for the export daemon_argv makes."""
    return {"type": "nbd", "id": "exp0", "node-name": NODE, "name": volume_id, "writable": True}


def qmp_chardev(directory: Path) -> str:
    """The daemon's QMP socket option: also the argv word that tells its PID is ours."""
    return f"socket,id=qmp0,path={opt(str(directory / 'qmp.sock'))},server=on,wait=off"


def port_free(host: str) -> Callable[[int], bool]:
    """Whether a port can be bound on host now (another program may hold one of ours)."""
    def free(port: int) -> bool:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                return False
        return True
    return free


class Exports:
    """The node's exports, found again from their directories under root."""

    def __init__(self, root: Path, ca: Path, cert: Path, key: Path,
                 ports: range = PORTS) -> None:
        self.root = root
        self.credentials = {"ca-cert.pem": ca, "server-cert.pem": cert, "server-key.pem": key}
        self.ports = ports
        self.crl: bytes | None = None  # the revocation list new daemons load
        self._revoked: frozenset[str] | None = None  # what it revokes

    def set_crl(self, pem: str | bytes | None) -> None:
        """The controller's revocation list for the daemons started (or restarted) next;
        one that does not parse is ignored (QEMU would refuse to start with it)."""
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            revoked = None if data is None else pki.crl_serials(data)
        except ValueError:
            log.warning("the controller's certificate revocation list does not parse; "
                        "exports keep the one they have")
            return
        self.crl, self._revoked = data, revoked

    def directory(self, volume_id: str, node_id: str) -> Path:
        return self.root / export_key(volume_id, node_id)

    def records(self) -> dict[tuple[str, str], Export]:
        """Every export with a record on disk, running or not."""
        found: dict[tuple[str, str], Export] = {}
        if not self.root.is_dir():
            return found
        for directory in self.root.iterdir():
            try:
                data = json.loads((directory / "export.json").read_text())
                export = Export(**{**data, "psk": tuple(data.get("psk", ()))})
            except (OSError, ValueError, TypeError):
                continue
            found[(export.volume_id, export.node_id)] = export
        return found

    def running(self, export: Export) -> int | None:
        """The PID of export's daemon, if it runs."""
        return self._child(self.directory(export.volume_id, export.node_id)).pid()

    def ensure(self, volume_id: str, node_id: str, client_cn: str, host: str,
               image: Path, psk: tuple[str, ...] = ()) -> Export:
        """Serve image to the node client_cn (or to the holders of the psk keys) as
        volume_id; the same port while it runs. Changed keys restart the daemon: a
        client whose key is gone is cut off, one whose key stays reconnects."""
        records = self.records()
        current = records.get((volume_id, node_id))
        if current is not None and self.running(current) is not None \
                and (current.client_cn, current.host) == (client_cn, host) \
                and not self._stale(current):
            if current.psk == psk:
                return current
            if current.psk and set(current.psk) < set(psk):
                return self._admit(current, psk)
        if current is not None:
            self.revoke(volume_id, node_id)
        taken = {e.port for key, e in records.items() if key != (volume_id, node_id)}
        port = choose_port(taken, self.ports, current.port if current else None,
                           port_free(host))
        export = Export(volume_id, node_id, client_cn, host, port, psk)
        self._start(export, image)
        return export

    def _admit(self, export: Export, psk: tuple[str, ...]) -> Export:
        """Keys added alone (a live migration's destination): its daemon reads keys.psk
        at each TLS handshake (GnuTLS), so the file is replaced and the daemon kept; its
        connected clients see nothing."""
        directory = self.directory(export.volume_id, export.node_id)
        admitted = dataclasses.replace(export, psk=psk)
        partial = directory / "tls" / ".keys.psk.new"
        _write_private(partial, "".join(f"{line}\n" for line in psk).encode())
        partial.replace(directory / "tls" / "keys.psk")
        (directory / "export.json").write_text(json.dumps(dataclasses.asdict(admitted)))
        log.info("export of volume %s to node %s admits %d key(s) now", export.volume_id,
                 export.client_cn, len(psk))
        return admitted

    def hand_over(self, export: Export, node_id: str, client_cn: str,
                  psk: tuple[str, ...], image: Path) -> Export:
        """The export now serves node_id (a live migration's destination, whose key it
        already admits): restarted on the same address and port with psk alone, which
        cuts off every other client (the source); the destination's QEMU reconnects."""
        self.revoke(export.volume_id, export.node_id)
        served = Export(export.volume_id, node_id, client_cn, export.host, export.port, psk)
        self._start(served, image)
        log.info("export of volume %s handed over from node %s to %s on port %d",
                 export.volume_id, export.client_cn, client_cn, export.port)
        return served

    def revoke(self, volume_id: str, node_id: str) -> None:
        """Stop the export's daemon (its client is cut off at once) and forget it."""
        directory = self.directory(volume_id, node_id)
        self._child(directory).stop()
        shutil.rmtree(directory, ignore_errors=True)

    def resize(self, export: Export, size_bytes: int) -> None:
        """Grow the volume under a running export, keeping its daemon, port and TLS.

        QEMU 7.2's NBD export does not share the resize permission: the export is dropped
        (its client reconnects, with reconnect-delay), the node grown, the export added
        again. That client keeps the size it had (QEMU 7.2, checked): its guest sees the
        new size at its next attach.
        """
        path = self.directory(export.volume_id, export.node_id) / "qmp.sock"
        with QMP(path, timeout=30.0) as monitor:
            monitor.execute("block-export-del", {"id": "exp0", "mode": "hard"})
            monitor.wait_event(["BLOCK_EXPORT_DELETED"], 30.0)
            try:
                monitor.execute("block_resize", {"node-name": NODE, "size": size_bytes})
            finally:
                monitor.execute("block-export-add", export_args(export.volume_id))

    def backup(self, export: Export, target: Path, timeout: float = 3600.0) -> None:
        """Copy the exported volume, as it is at this instant, into the empty qcow2 target."""
        path = self.directory(export.volume_id, export.node_id) / "qmp.sock"
        with QMP(path, timeout=30.0) as monitor:
            monitor.execute("blockdev-add", {"driver": "qcow2", "node-name": "backup0",
                                             "file": {"driver": "file",
                                                      "filename": str(target)}})
            try:
                monitor.execute("blockdev-backup", {"job-id": "backup0", "device": NODE,
                                                    "target": "backup0", "sync": "full"})
                event = monitor.wait_event(["BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"],
                                           timeout)
            finally:
                monitor.execute("blockdev-del", {"node-name": "backup0"})
        data = event.get("data", {})
        if event["event"] != "BLOCK_JOB_COMPLETED" or data.get("error"):
            raise RuntimeError(f"backup of {export.volume_id} failed: "
                               f"{data.get('error', event['event'])}")

    def _stale(self, export: Export) -> bool:
        """Whether the node's certificate was renewed, or the revocation list changed, since
        the daemon loaded them, and it may be restarted with the new ones: QEMU 7.2 reads
        them once (and once the old certificate expires a client could not connect again).
        Not while its client is connected."""
        tls = self.directory(export.volume_id, export.node_id) / "tls"
        try:
            renewed = (tls / "server-cert.pem").read_bytes() \
                != self.credentials["server-cert.pem"].read_bytes()
        except OSError:
            return False
        listed = self._revoked is not None and served_serials(tls) != self._revoked
        if not (renewed or listed):
            return False
        return not connected(export.port, _proc_net_tcp())

    def _child(self, directory: Path) -> ChildProcess:
        return ChildProcess(directory / "daemon.pid", qmp_chardev(directory))

    def _start(self, export: Export, image: Path) -> None:
        directory = self.directory(export.volume_id, export.node_id)
        with Reverter() as revert:
            revert.add(lambda: shutil.rmtree(directory, ignore_errors=True))
            (directory / "tls").mkdir(parents=True, mode=0o700)
            directory.chmod(0o700)
            if export.psk:
                _write_private(directory / "tls" / "keys.psk",
                               "".join(f"{line}\n" for line in export.psk).encode())
            else:
                for name, source in self.credentials.items():
                    shutil.copyfile(source, directory / "tls" / name)
                    (directory / "tls" / name).chmod(0o600)
                if self.crl is not None:
                    _write_private(directory / "tls" / "ca-crl.pem", self.crl)
            child = self._child(directory)
            with listener(export.host, export.port) as sock:
                child.start(daemon_argv(export, image, directory), directory / "log",
                            fds={LISTEN_FD: sock.fileno()})
            revert.add(child.stop)
            self._wait_ready(directory, child)
            (directory / "export.json").write_text(json.dumps(dataclasses.asdict(export)))
        log.info("exported volume %s to node %s on %s:%d", export.volume_id,
                 export.client_cn, export.host, export.port)

    def _wait_ready(self, directory: Path, child: ChildProcess) -> None:
        # The QMP greeting comes once every command-line option is set up (or has failed).
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if child.pid() is None:
                break
            try:
                with QMP(directory / "qmp.sock", timeout=2.0) as monitor:
                    monitor.execute("query-block-exports")
                return
            except QMPError:
                time.sleep(0.05)
        problem = _tail(directory / "log") or "it did not answer in time"
        raise HostCommandError([DAEMON], -1, problem)


def heir(export: Export, entries: list[dict[str, Any]],
         records: Collection[tuple[str, str]]) -> dict[str, Any] | None:
    """The wanted export of the same volume that export, no longer wanted for its own
    node, is handed over to: one for another node not served yet, each of whose keys
    export already admits (volume_handover.successor); None: it is revoked."""
    for entry in entries:
        node = entry.get("node_id")
        if node == export.node_id or (export.volume_id, node) in records:
            continue
        try:
            wanted = psk_lines(entry.get("psk"))
        except ValueError:
            continue
        if volume_handover.successor(export.psk, wanted):
            return entry
    return None


def served_serials(tls: Path) -> frozenset[str] | None:
    """The serials the revocation list in a daemon's TLS directory holds; None if none."""
    try:
        return pki.crl_serials((tls / "ca-crl.pem").read_bytes())
    except (OSError, ValueError):
        return None


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def connected(port: int, tables: str) -> bool:
    """Whether /proc/net/tcp{,6} text (tables) holds an established connection to port."""
    for line in tables.splitlines():
        fields = line.split()
        if len(fields) > 3 and ":" in fields[1] and fields[3] == "01":
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _proc_net_tcp() -> str:
    text = ""
    for name in ("tcp", "tcp6"):
        try:
            text += Path(f"/proc/net/{name}").read_text()
        except OSError:
            pass
    return text


def _tail(path: Path) -> str:
    try:
        return " ".join(path.read_text(errors="replace").split()[-60:])
    except OSError:
        return ""
