"""Live migration's QMP steps on both ends, as QEMU documents live storage migration:
the destination exports its disk over NBD and waits for the stream (-incoming defer);
the source mirrors its disk into that export, migrates the memory once the mirror is
ready, and cancels the mirror after the switch-over.

The disk is mirrored with sync=top: the destination's new disk is an overlay on the
same base image (fetched and checksummed as for any start), so only what the guest
wrote on its source travels.

Both connections (the disk mirror's NBD and the memory stream) are TLS with a key the
controller made for this migration alone and gave to its two nodes only (TLS-PSK, with
(EC)DHE): a host that reaches the destination's ports can neither feed it a guest nor
write its disk, and none reads the stream. Not the nodes' x509 certificates: QEMU reads
those only at its start, before it drops root (volumes.py), so a running guest's QEMU
could use one only if every QEMU held its node's key all along. The key file is made
for QEMU's own user and removed when the step is over: on the source once object-add
read it (a client's key is read then), on the destination once the guest arrived (GnuTLS
reads a server's key file at each handshake: removed earlier, the mirror's TLS handshake
failed, "The TLS connection was non-properly terminated").

Post-copy (Nova's live_migration_permit_post_copy, an opt-in: the order's "post_copy")
gives both QEMUs the postcopy-ram capability before the stream starts; the migration
starts in pre-copy as always, and where it would pause the guest (force-complete) or
give up (the completion timeout) the source calls migrate-start-postcopy instead: the
guest runs on the destination at once and the pages it still lacks are pulled from the
source. From then on it cannot be aborted nor rolled back (QEMU: a failure of either
side then loses the guest). With TLS it works as pre-copy (the return path is in the same
TLS session); the disk is already equal on both ends by then (the write-blocking mirror).
The destination's QEMU needs userfaultfd: QEMU 7.2 runs under its own user without
capabilities, so the node needs vm.unprivileged_userfaultfd=1 (QEMU refuses the
capability otherwise, and the destination reports that).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atwill.agent.hypervisor.qmp import QMP, QMPError

DRIVE = "disk0"  # the instance disk's drive id (spec._disk)
EXPORT = "atwill-migration"
TARGET = "atwill-migration-target"
JOB = "atwill-migration-mirror"
CREDS = "atwill-migration-tls"
KEYS = "migration-tls"  # the key's directory in the instance's
UNTHROTTLED = 8 << 30  # bytes/s: QEMU's migration default (128 MiB/s) is a cap we don't want
POLL = 0.2
# The memory phase is followed closer: the switch-over is reported (and the guest's
# network follows it) only once this poll sees "completed".
MEMORY_POLL = 0.05
log = logging.getLogger("atwill.agent.migrations")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_KEY = re.compile(r"[0-9a-f]{32,128}")


@dataclasses.dataclass(frozen=True)
class Tls:
    """A migration's TLS identity from the controller: the key both of its nodes hold."""

    username: str
    key: str

    @classmethod
    def of(cls, data: object) -> Tls:
        """The "tls" of an order, checked: without one there is no migration."""
        if not isinstance(data, dict):
            raise ValueError("the controller gave this migration no TLS key; "
                             "it is not migrated in the clear")
        username, key = data.get("username"), data.get("key")
        if not isinstance(username, str) or not _USERNAME.fullmatch(username) \
                or not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError("the migration's TLS key is malformed")
        return cls(username, key)


def creds_args(directory: Path, endpoint: str, username: str | None = None
               ) -> dict[str, Any]:
    """object-add's arguments for the migration's TLS-PSK credentials (keys.psk in
    directory); the client names the key it uses."""
    args: dict[str, Any] = {"qom-type": "tls-creds-psk", "id": CREDS, "dir": str(directory),
                            "endpoint": endpoint}
    if username is not None:
        args["username"] = username
    return args


def key_directory(instance_dir: Path, owner_of: Path | tuple[int, int] | None,
                  tls: Tls) -> Path:
    """A directory holding only keys.psk, for QEMU's user (the owner of owner_of, the
    instance's disk, or that (uid, gid); None: root's) and root: QEMU reads it after it
    dropped root."""
    directory = instance_dir / KEYS
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700)
    path = directory / "keys.psk"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400), "w") as out:
        out.write(f"{tls.username}:{tls.key}\n")
    if os.geteuid() == 0 and owner_of is not None:
        if isinstance(owner_of, Path):
            found = owner_of.stat()
            owner_of = (found.st_uid, found.st_gid)
        for made in (directory, path):
            os.chown(made, *owner_of)
    return directory


def forget_keys(instance_dir: Path) -> None:
    """Remove the migration's key directory (key_directory), if any is left."""
    shutil.rmtree(instance_dir / KEYS, ignore_errors=True)


def free_ports(host: str, count: int = 2) -> list[int]:
    """Ports free on host now (the kernel's choice), for QEMU to listen on."""
    socks, ports = [], []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            socks.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in socks:
            sock.close()
    return ports


def _node_of(qmp: QMP, drive: str) -> str:
    for device in qmp.execute("query-block") or []:
        if device.get("device") == drive and device.get("inserted"):
            return str(device["inserted"]["node-name"])
    raise QMPError(f"QEMU has no drive {drive}")


def receive(qmp: QMP, host: str, nbd_port: int | None, port: int, keys: Path,
            post_copy: bool = False) -> None:
    """On the destination (QEMU started with -incoming defer): export the new disk, wait;
    both over TLS with the key in the directory keys; ready for post-copy if asked.
    Without nbd_port there is no local disk (the guest's disks are volumes, which both
    ends use from their export): only the memory comes."""
    if post_copy:
        try:
            qmp.execute("migrate-set-capabilities", {"capabilities": [
                {"capability": "postcopy-ram", "state": True}]})
        except QMPError as err:
            raise QMPError(f"post-copy is permitted but this node's QEMU cannot receive "
                           f"it ({err}); QEMU's user needs userfaultfd: sysctl "
                           "vm.unprivileged_userfaultfd=1") from err
    qmp.execute("object-add", creds_args(keys, "server"))
    if nbd_port is not None:
        qmp.execute("nbd-server-start", {"addr": {"type": "inet", "data": {
            "host": host, "port": str(nbd_port)}}, "tls-creds": CREDS})
        qmp.execute("block-export-add", {"type": "nbd", "id": EXPORT, "name": DRIVE,
                                         "node-name": _node_of(qmp, DRIVE),
                                         "writable": True})
    qmp.execute("migrate-set-parameters", {"tls-creds": CREDS})
    qmp.execute("migrate-incoming", {"uri": f"tcp:{host}:{port}"})


def stop_serving(execute: Execute) -> None:
    """On the destination once the guest runs there: no export of its disk is left
    (either may be gone already, after an agent restart)."""
    _quietly(execute, "block-export-del", {"id": EXPORT})
    _quietly(execute, "nbd-server-stop")
    _drop_creds(execute)


@dataclasses.dataclass
class Order:
    """What the controller asks of the source (its desired state's "migrate_to")."""

    migration: int
    host: str
    nbd_port: int | None  # None: the destination has no local disk to mirror into
    port: int
    downtime_ms: int = 300
    bandwidth: int = 0
    abort: bool = False
    force_complete: bool = False
    tls: dict[str, Any] | None = None
    post_copy: bool = False  # permitted: force-complete and the timeout switch to it

    @classmethod
    def of(cls, data: dict[str, Any]) -> Order:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


class Aborted(Exception):
    """The controller asked to abort (DELETE /servers/{id}/migrations/{mid})."""


class PostCopyFailed(QMPError):
    """The migration failed after it switched to post-copy: the guest is lost (neither
    end has all of it); the source's copy is left paused, never resumed."""


@dataclasses.dataclass
class _Run:
    """What send did to the guest, for its roll-back: paused it (force-complete without
    post-copy), or switched to post-copy (no roll-back then)."""

    paused: bool = False
    post_copy: bool = False


Execute = Callable[..., Any]  # (command, arguments=None) -> QEMU's return value


def connected(path: Path, timeout: float) -> Execute:
    """One QMP connection per command: QEMU serves one client at a time, and the agent's
    heartbeat must still read the instance's state during a migration of minutes."""
    def execute(command: str, arguments: dict[str, Any] | None = None) -> Any:
        with QMP(path, timeout) as qmp:
            return qmp.execute(command, arguments)
    return execute


def send(execute: Execute, order: Callable[[], Order],
         progress: Callable[[dict[str, Any]], None], timeout: float, keys: Path,
         switched: Callable[[], None] = lambda: None) -> None:
    """On the source: mirror, migrate, switch over, over TLS with the key in the directory
    keys; raise (the guest still running here) if anything fails, the controller aborts,
    or it takes over timeout seconds. switched is called as soon as the guest runs on the
    destination, before the source's mirror and key are tidied away."""
    first = order()
    tls = Tls.of(first.tls)
    deadline = time.monotonic() + timeout
    run = _Run()  # what was done to the guest, even if it fails
    try:
        execute("object-add", creds_args(keys, "client", tls.username))
        if first.nbd_port is not None:
            _mirror(execute, order, progress, deadline, first)
        elif has_drive(execute, DRIVE):
            raise QMPError("the destination has no disk export to mirror the local disk into")
        else:  # booted from a volume: its disks stay where they are, on their exports
            log.info("migration %s: no local disk to mirror", first.migration)
        execute("migrate-set-capabilities", {"capabilities": [
            {"capability": "auto-converge", "state": True},
            *([{"capability": "postcopy-ram", "state": True}] if first.post_copy else [])]})
        execute("migrate-set-parameters", {"downtime-limit": first.downtime_ms,
                                           "max-bandwidth": first.bandwidth or UNTHROTTLED,
                                           "tls-creds": CREDS})
        execute("migrate", {"uri": f"tcp:{first.host}:{first.port}"})
        _migrate(execute, order, progress, deadline, run)
    except BaseException:
        if run.post_copy:
            # Nothing to roll back to: the guest ran on the destination meanwhile.
            _quietly(execute, "block-job-cancel", {"device": JOB, "force": True})
            _drop_creds(execute)
        else:
            _roll_back(execute, run.paused)
        raise
    # The guest runs on the destination now: what is left here is tidied, never undone.
    switched()
    try:
        execute("block-job-cancel", {"device": JOB})
        _wait_job_gone(execute, time.monotonic() + 30)
    except QMPError:
        pass
    _drop_creds(execute)


def has_drive(execute: Execute, drive: str) -> bool:
    """Whether the guest has the (local) drive."""
    return any(device.get("device") == drive and device.get("inserted")
               for device in execute("query-block") or [])


def _mirror(execute: Execute, order: Callable[[], Order],
            progress: Callable[[dict[str, Any]], None], deadline: float,
            first: Order) -> None:
    """Mirror the local disk into the destination's export, until the mirror is ready."""
    log.info("migration %s: mirroring the disk to %s:%s", first.migration, first.host,
             first.nbd_port)
    execute("blockdev-add", {"driver": "nbd", "node-name": TARGET, "export": DRIVE,
                             "server": {"type": "inet", "host": first.host,
                                        "port": str(first.nbd_port)},
                             "tls-creds": CREDS})
    # write-blocking: once the mirror is ready, a guest write completes only when the
    # destination holds it too, so the disks are equal at the switch-over (the
    # destination runs the guest as soon as the memory arrives) and a busy disk
    # cannot keep the mirror from converging.
    execute("blockdev-mirror", {"job-id": JOB, "device": DRIVE, "target": TARGET,
                                "sync": "top", "copy-mode": "write-blocking"})
    _mirror_ready(execute, order, progress, deadline)
    log.info("migration %s: disk mirrored to %s; migrating the memory", first.migration,
             first.host)


def _jobs(execute: Execute) -> dict[str, dict[str, Any]]:
    return {j.get("device"): j for j in execute("query-block-jobs") or []}


def _mirror_ready(execute: Execute, order: Callable[[], Order],
                  progress: Callable[[dict[str, Any]], None], deadline: float) -> None:
    while True:
        job = _jobs(execute).get(JOB)
        if job is None:
            raise QMPError("the disk mirror ended before it was ready")
        total, done = int(job.get("len", 0)), int(job.get("offset", 0))
        progress({"disk_total": total, "disk_processed": done,
                  "disk_remaining": max(0, total - done)})
        if job.get("ready"):
            return
        _check(order, deadline, "mirroring the disk")
        time.sleep(POLL)


def _migrate(execute: Execute, order: Callable[[], Order],
             progress: Callable[[dict[str, Any]], None], deadline: float,
             run: _Run) -> None:
    """Follow the migration to completion; run says what was done to the guest."""
    while True:
        state = execute("query-migrate") or {}
        ram = state.get("ram") or {}
        progress({"memory_total": int(ram.get("total", 0)),
                  "memory_processed": int(ram.get("transferred", 0)),
                  "memory_remaining": int(ram.get("remaining", 0))})
        status = state.get("status")
        if status == "completed":
            # QEMU's own figures, for the operator and `atwill bench migration`.
            log.info("migration completed: downtime %s ms, total %s ms, %s bytes of memory%s",
                     state.get("downtime"), state.get("total-time"), ram.get("transferred"),
                     f", {ram.get('postcopy-requests', 0)} pages asked in post-copy"
                     if run.post_copy else "")
            return
        if run.post_copy and status in ("failed", "cancelled", "postcopy-paused"):
            # postcopy-paused waits for a recovery (migrate-recover) that is not done here.
            raise PostCopyFailed(f"the migration {status} in post-copy: "
                                 f"{state.get('error-desc', status)}; the guest is lost")
        if status in ("failed", "cancelled"):
            raise QMPError(f"the migration {status}: {state.get('error-desc', status)}")
        if not run.post_copy:
            current = order()
            if current.post_copy and not current.abort and (
                    current.force_complete or time.monotonic() >= deadline):
                # Nova: a permitted post-copy replaces the pause, and the timeout's abort.
                _start_post_copy(execute, progress, run)
                continue
            _check(order, deadline, "migrating the memory")
            if current.force_complete and not run.paused and \
                    (execute("query-status") or {}).get("status") == "running":
                execute("stop")  # Nova's force-complete: a paused guest dirties nothing
                run.paused = True
        # In post-copy neither abort nor the timeout applies: it can only complete.
        time.sleep(min(POLL, MEMORY_POLL))


def _start_post_copy(execute: Execute, progress: Callable[[dict[str, Any]], None],
                     run: _Run) -> None:
    execute("migrate-start-postcopy")
    run.post_copy = True
    progress({"post_copy": True})
    log.info("migration switched to post-copy: the guest runs on the destination")


def _check(order: Callable[[], Order], deadline: float, what: str) -> None:
    if order().abort:
        raise Aborted("aborted on request")
    if time.monotonic() >= deadline:
        raise QMPError(f"{what} did not complete in time")


def _wait_job_gone(execute: Execute, deadline: float) -> None:
    while JOB in _jobs(execute) and time.monotonic() < deadline:
        time.sleep(0.05)
    _quietly(execute, "blockdev-del", {"node-name": TARGET})


def _quietly(execute: Execute, command: str, arguments: dict[str, Any] | None = None) -> None:
    try:
        execute(command, arguments)
    except QMPError:
        pass


def _roll_back(execute: Execute, paused_by_us: bool) -> None:
    """Leave the source as it was: no migration, no mirror, the guest running again."""
    _quietly(execute, "migrate_cancel")
    _quietly(execute, "block-job-cancel", {"device": JOB, "force": True})
    try:
        _wait_job_gone(execute, time.monotonic() + 10)
    except QMPError:
        pass
    _drop_creds(execute)
    if paused_by_us:
        _quietly(execute, "cont")


def _drop_creds(execute: Execute) -> None:
    """No migration is left set to use the key, nor the key in QEMU (each may be gone)."""
    _quietly(execute, "migrate-set-parameters", {"tls-creds": ""})
    _quietly(execute, "object-del", {"id": CREDS})
