"""The agent's side of a cold migration or resize (controller/servers/resize_agents.py).

The desired state's cold_migrations block names what this node sends and receives. A
source's instance has left its instances (the converge stops it, keeping its disk); once
QEMU is gone its disk, the instance's qcow2 overlay, is uploaded to the controller. A
destination fetches that disk into the instance's directory, grows it to the new
flavor's root size and says so; the instance is then in its instances and starts on the
same base image, fetched as for any instance. Either says why if it cannot. Each step
runs in a thread of its own, once per migration, so converging goes on meanwhile.

Resized on its own node ("local"), the instance's disk is grown in place; as Nova's
libvirt driver does, the node first keeps the disk as it was (disk.pre-resize-<migration>
beside it, copied under a temporary name, synced, then renamed). A revert (revert_local;
the instance is withheld, so stopped) renames that copy back over the disk and says so,
whatever the guest wrote since is lost as in Nova; a confirm (confirm_local) deletes it;
a deleted instance takes it with its directory. Renames alone move it, so an agent
restarted at any point neither loses the disk nor restores it twice.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import httpx

from atwill.hostlib.run import run

from .client import ClusterError, check
from .hypervisor import disks
from .hypervisor.qemu import QemuDriver

log = logging.getLogger("atwill.agent.cold_migrations")
STOP_WAIT = 30.0  # the converge powers the guest off (ACPI, then quit after 5 s)
CHUNK = 1 << 20
GIB = 1 << 30
KEEP_TIMEOUT = 6 * 3600.0  # copying a large overlay on a slow disk (a reflink: instant)
KEPT_PREFIX = "disk.pre-resize-"


def grow(disk: Path, size_gb: int) -> None:
    """Grow the qcow2 disk to size_gb (never shrink), opening the file alone: its backing
    image is named at each start, never taken from its header (the guest's to write)."""
    disks.verify_overlay(disk)
    name = "json:" + json.dumps({"driver": "qcow2", "backing": None,
                                 "file": {"driver": "file", "filename": str(disk)}})
    info = json.loads(run(["qemu-img", "info", "--output", "json", name], timeout=60).stdout)
    if size_gb * GIB > int(info["virtual-size"]):
        run(["qemu-img", "resize", "-q", name, f"{size_gb}G"], timeout=60)


def kept_path(disk: Path, migration: str) -> Path:
    """Where a same-node resize keeps the disk as it was, named by its migration (a later
    resize's copy is never another's to restore or delete)."""
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", migration):
        raise ValueError(f"not a migration id: {migration!r}")
    return disk.with_name(KEPT_PREFIX + migration)


def keep(disk: Path, kept: Path) -> bool:
    """Copy disk (stopped) to kept, with its owner and mode; whether a copy was made. Once:
    a copy already there is the disk as it was before any growing (the rename is last)."""
    if kept.exists():
        return False
    if not disk.exists():
        raise FileNotFoundError(f"instance {disk.parent.name} has no disk on this node")
    partial = kept.with_name(f".{kept.name}.partial")
    try:
        run(["cp", "--reflink=auto", "--sparse=always", "--", str(disk), str(partial)],
            timeout=KEEP_TIMEOUT)
        info = disk.stat()
        if os.geteuid() == 0:
            os.chown(partial, info.st_uid, info.st_gid)
        partial.chmod(stat.S_IMODE(info.st_mode))
        disks.sync(partial)
        partial.replace(kept)
        disks.sync(kept.parent)
    finally:
        partial.unlink(missing_ok=True)
    return True


def restore(disk: Path, kept: Path) -> bool:
    """Put the kept copy back as the disk (one rename); whether there was one to put back
    (none: restored already, or never kept by an older agent)."""
    try:
        kept.replace(disk)
    except FileNotFoundError:
        return False
    disks.sync(disk.parent)
    return True


class ColdMigrations:
    """This node's cold migration steps, by migration id, each done once."""

    def __init__(self, driver: QemuDriver, node_id: str,
                 client: Callable[[], httpx.Client]) -> None:
        # client makes an HTTP client to the controller (through the overlay) as this node.
        self.driver, self.node_id, self.client = driver, node_id, client
        self.running: set[str] = set()
        self.done: set[str] = set()
        self._lock = threading.Lock()

    def converge(self, block: dict[str, Any] | None, destroy: Collection[str] = ()) -> None:
        """Start each step the block asks for and is not running or done yet."""
        block = block or {}
        for item in block.get("send") or []:
            self._start("send", item, self._send)
        for item in block.get("receive") or []:
            self._start("receive", item, self._receive)
        for item in block.get("revert_local") or []:
            self._start("revert", item, self._revert_local)
        for item in block.get("confirm_local") or []:
            self._start("confirm", item, self._confirm_local)
        self._drop_received(destroy)

    def _start(self, kind: str, item: dict[str, Any], step: Callable[[dict], None]) -> None:
        key = f"{kind}:{item['migration']}"
        with self._lock:
            if key in self.running or key in self.done:
                return
            self.running.add(key)
        threading.Thread(target=self._run, args=(key, item, step), daemon=True,
                         name=f"cold-{key[:13]}").start()

    def _run(self, key: str, item: dict[str, Any], step: Callable[[dict], None]) -> None:
        answered = False
        try:
            step(item)
            answered = True
        except ClusterError as err:
            if err.status == 409:  # done already (a retry whose first answer was lost)
                log.info("cold migration %s: %s", key, err.message)
                answered = True
            elif not _reports_errors(key):
                log.warning("cold migration %s: %s", key, err.message)
                answered = err.status < 500  # else retried at the next converge
            else:
                log.warning("cold migration %s failed: %s", key, err.message)
                answered = self._report_error(item, err.message[:4096])
        except httpx.TransportError as err:
            log.warning("cold migration %s: the controller is out of reach (%s); will "
                        "retry", key, err)
        except Exception as err:  # noqa: BLE001 - a send or receive says why
            log.exception("cold migration %s failed", key)
            if _reports_errors(key):
                answered = self._report_error(item, f"{type(err).__name__}: {err}"[:4096])
        finally:
            with self._lock:
                self.running.discard(key)
                if answered:
                    self.done.add(key)

    def _path(self, item: dict[str, Any], what: str) -> str:
        return f"/cluster/v1/nodes/{self.node_id}/cold-migrations/{item['migration']}/{what}"

    def _wait_stopped(self, uuid: str) -> None:
        deadline = time.monotonic() + STOP_WAIT
        while self.driver.pid(uuid) is not None:
            if time.monotonic() > deadline:
                self.driver.stop(uuid, timeout=5.0)  # the converge did not: stop it here
                break
            time.sleep(0.2)

    def _send(self, item: dict[str, Any]) -> None:
        uuid = item["instance"]
        self._wait_stopped(uuid)
        disk = self.driver.paths(uuid).disk
        if not disk.exists():
            raise FileNotFoundError(f"instance {uuid} has no disk on this node")
        with self.client() as http:
            check(http.put(self._path(item, "file"), content=_chunks(disk), headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(disk.stat().st_size)}))
        log.info("cold migration %s: the disk of %s was sent", item["migration"], uuid)

    def _receive(self, item: dict[str, Any]) -> None:
        uuid = item["instance"]
        paths = self.driver.paths(uuid)
        if item.get("local"):
            self._wait_stopped(uuid)  # resized on its own node: the same disk grows
            kept = kept_path(paths.disk, item["migration"])
            keep(paths.disk, kept)
            try:
                grow(paths.disk, int(item.get("disk_gb") or 0))
            except BaseException:
                restore(paths.disk, kept)  # failed: the instance stays as it was
                raise
        else:
            paths.directory.mkdir(parents=True, exist_ok=True)
            partial = paths.directory / ".disk.partial"
            try:
                with self.client() as http, http.stream("GET", self._path(item, "file")) \
                        as resp:
                    if resp.status_code >= 400:
                        resp.read()
                    check(resp)
                    with partial.open("wb") as out:
                        for chunk in resp.iter_bytes(CHUNK):
                            out.write(chunk)
                partial.chmod(0o600)
                partial.replace(paths.disk)
            finally:
                partial.unlink(missing_ok=True)
            grow(paths.disk, int(item.get("disk_gb") or 0))
        with self.client() as http:
            check(http.post(self._path(item, "received")))
        log.info("cold migration %s: the disk of %s was received", item["migration"], uuid)

    def _revert_local(self, item: dict[str, Any]) -> None:
        """A resize on this node reverted: its kept disk goes back (the instance is withheld
        until the controller hears it, then starts with its old flavor)."""
        uuid = item["instance"]
        self._wait_stopped(uuid)
        disk = self.driver.paths(uuid).disk
        if restore(disk, kept_path(disk, item["migration"])):
            log.info("cold migration %s: the disk of %s is back as it was before the "
                     "resize", item["migration"], uuid)
        else:
            log.warning("cold migration %s: no disk of %s was kept before the resize (or "
                        "it was put back already)", item["migration"], uuid)
        with self.client() as http:
            check(http.post(self._path(item, "reverted")))

    def _confirm_local(self, item: dict[str, Any]) -> None:
        """A resize on this node confirmed: its kept disk is deleted."""
        disk = self.driver.paths(item["instance"]).disk
        kept = kept_path(disk, item["migration"])
        if kept.exists():
            kept.unlink(missing_ok=True)
            log.info("cold migration %s: the disk of %s kept for a revert was deleted",
                     item["migration"], item["instance"])

    def _report_error(self, item: dict[str, Any], message: str) -> bool:
        """Say why; whether the controller got it (a 4xx: the step is over anyway)."""
        try:
            with self.client() as http:
                check(http.post(self._path(item, "error"), json={"message": message}))
        except ClusterError as err:
            return err.status < 500
        except httpx.HTTPError:
            return False
        return True

    def _drop_received(self, destroy: Collection[str]) -> None:
        """A received disk whose instance never started here (reverted or failed, or a
        stopped server) is no instance of the driver's: removed here when destroyed."""
        for uuid in destroy:
            directory = self.driver.paths(uuid).directory
            if directory.is_dir() and not self.driver.paths(uuid).spec.exists():
                shutil.rmtree(directory, ignore_errors=True)


def _reports_errors(key: str) -> bool:
    """Whether a failed step is reported (which ends the migration in error): a send or a
    receive; a revert or confirm, past VERIFY_RESIZE, is retried at the next converge."""
    return key.startswith(("send:", "receive:"))


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            yield chunk
