"""Live migration's QMP steps on both ends, as QEMU documents live storage migration:
the destination exports its disk over NBD and waits for the stream (-incoming defer);
the source mirrors its disk into that export, migrates the memory once the mirror is
ready, and cancels the mirror after the switch-over.

The disk is mirrored with sync=top: the destination's new disk is an overlay on the
same base image (fetched and checksummed as for any start), so only what the guest
wrote on its source travels.
"""

from __future__ import annotations

import dataclasses
import logging
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
UNTHROTTLED = 8 << 30  # bytes/s: QEMU's migration default (128 MiB/s) is a cap we don't want
POLL = 0.2
log = logging.getLogger("atwill.agent.migrations")


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


def receive(qmp: QMP, host: str, nbd_port: int, port: int) -> None:
    """On the destination (QEMU started with -incoming defer): export the new disk, wait."""
    qmp.execute("nbd-server-start", {"addr": {"type": "inet", "data": {
        "host": host, "port": str(nbd_port)}}})
    qmp.execute("block-export-add", {"type": "nbd", "id": EXPORT, "name": DRIVE,
                                     "node-name": _node_of(qmp, DRIVE), "writable": True})
    qmp.execute("migrate-incoming", {"uri": f"tcp:{host}:{port}"})


def stop_serving(execute: Execute) -> None:
    """On the destination once the guest runs there: no export of its disk is left
    (either may be gone already, after an agent restart)."""
    _quietly(execute, "block-export-del", {"id": EXPORT})
    _quietly(execute, "nbd-server-stop")


@dataclasses.dataclass
class Order:
    """What the controller asks of the source (its desired state's "migrate_to")."""

    migration: int
    host: str
    nbd_port: int
    port: int
    downtime_ms: int = 300
    bandwidth: int = 0
    abort: bool = False
    force_complete: bool = False

    @classmethod
    def of(cls, data: dict[str, Any]) -> Order:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


class Aborted(Exception):
    """The controller asked to abort (DELETE /servers/{id}/migrations/{mid})."""


Execute = Callable[..., Any]  # (command, arguments=None) -> QEMU's return value


def connected(path: Path, timeout: float) -> Execute:
    """One QMP connection per command: QEMU serves one client at a time, and the agent's
    heartbeat must still read the instance's state during a migration of minutes."""
    def execute(command: str, arguments: dict[str, Any] | None = None) -> Any:
        with QMP(path, timeout) as qmp:
            return qmp.execute(command, arguments)
    return execute


def send(execute: Execute, order: Callable[[], Order],
         progress: Callable[[dict[str, Any]], None], timeout: float) -> None:
    """On the source: mirror, migrate, switch over; raise (the guest still running here)
    if anything fails, the controller aborts, or it takes over timeout seconds."""
    first = order()
    log.info("migration %s: mirroring the disk to %s:%s", first.migration, first.host,
             first.nbd_port)
    deadline = time.monotonic() + timeout
    paused: list[bool] = []  # set when force-complete paused the guest, even if it fails
    try:
        execute("blockdev-add", {"driver": "nbd", "node-name": TARGET, "export": DRIVE,
                                 "server": {"type": "inet", "host": first.host,
                                            "port": str(first.nbd_port)}})
        execute("blockdev-mirror", {"job-id": JOB, "device": DRIVE, "target": TARGET,
                                    "sync": "top"})
        _mirror_ready(execute, order, progress, deadline)
        log.info("migration %s: disk mirrored to %s; migrating the memory", first.migration,
                 first.host)
        execute("migrate-set-capabilities", {"capabilities": [
            {"capability": "auto-converge", "state": True}]})
        execute("migrate-set-parameters", {"downtime-limit": first.downtime_ms,
                                           "max-bandwidth": first.bandwidth or UNTHROTTLED})
        execute("migrate", {"uri": f"tcp:{first.host}:{first.port}"})
        _migrate(execute, order, progress, deadline, paused)
    except BaseException:
        _roll_back(execute, bool(paused))
        raise
    # The guest runs on the destination now: what is left here is tidied, never undone.
    try:
        execute("block-job-cancel", {"device": JOB})
        _wait_job_gone(execute, time.monotonic() + 30)
    except QMPError:
        pass


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
             paused: list[bool]) -> None:
    """Follow the migration to completion (paused gets True if the guest was paused)."""
    while True:
        state = execute("query-migrate") or {}
        ram = state.get("ram") or {}
        progress({"memory_total": int(ram.get("total", 0)),
                  "memory_processed": int(ram.get("transferred", 0)),
                  "memory_remaining": int(ram.get("remaining", 0))})
        status = state.get("status")
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            raise QMPError(f"the migration {status}: {state.get('error-desc', status)}")
        _check(order, deadline, "migrating the memory")
        if order().force_complete and not paused and \
                (execute("query-status") or {}).get("status") == "running":
            execute("stop")  # Nova's force-complete: a paused guest dirties nothing
            paused.append(True)
        time.sleep(POLL)


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
    if paused_by_us:
        _quietly(execute, "cont")
