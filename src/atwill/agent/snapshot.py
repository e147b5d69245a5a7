"""Snapshots of an instance's disk (createImage), and their upload to the controller.

take() makes a consistent, standalone qcow2 copy of the instance's disk: a
running guest is stopped for the copy (QEMU drains and flushes its block devices
when the VM stops) and always let run again afterwards. Snapshots takes each
requested image in a thread of its own, one at a time per instance, so the agent
keeps converging meanwhile, and uploads each image id once; a copy that could
not reach the controller is kept and sent again, without stopping the guest again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from atwill.hostlib.run import HostCommandError, Reverter, run

from ..core.imageformat import QEMU_FORMATS
from .client import ClusterError, check
from .hypervisor import confine, disks
from .hypervisor.qemu import DriverError, QemuDriver
from .hypervisor.qmp import QMP, run_state
from .hypervisor.spec import escape

log = logging.getLogger("atwill.agent.snapshot")
CONVERT_TIMEOUT = 3600.0
CHUNK = 1 << 20


def take(driver: QemuDriver, uuid: str, dest: Path, timeout: float = CONVERT_TIMEOUT) -> None:
    """Write the instance's disk, its backing chain flattened, to dest as one qcow2."""
    disk = driver.paths(uuid).disk
    if not disk.exists():
        raise DriverError(f"instance {uuid} has no disk on this node")
    with Reverter() as revert:
        revert.add(lambda: dest.unlink(missing_ok=True))
        spec = driver.spec(uuid)
        resume = _stop(driver, uuid)
        try:
            disks.verify_overlay(disk)
            run(convert_command(disk, spec.image_path, spec.image_format, dest,
                                confine.disk_owner(disk)), timeout=timeout)
        finally:
            if resume:
                with QMP(driver.paths(uuid).qmp, driver.qmp_timeout) as qmp:
                    qmp.execute("cont")


def convert_command(disk: Path, base: Path, base_format: str, dest: Path,
                    owner: int | None) -> list[str]:
    """qemu-img flattening disk onto base into dest. The backing image is named, never
    read from disk's header (the instance's QEMU can write it); with owner (the instance's
    user), qemu-img runs as that user, so it can read nothing the instance could not, and
    dest is made beforehand as that user's."""
    opts = ",".join([
        "driver=qcow2", f"file.driver=file,file.filename={escape(disk)}",
        f"backing.driver={escape(QEMU_FORMATS.get(base_format, base_format))}",
        f"backing.file.driver=file,backing.file.filename={escape(base)}"])
    # -U: QEMU holds the image's lock while it lives, even with its vCPUs stopped.
    command = ["qemu-img", "convert", "-U", "--image-opts", opts, "-O", "qcow2", str(dest)]
    if owner is None:
        return command
    try:
        os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.chown(dest, owner, -1)
    except OSError as err:
        raise HostCommandError(command, 1, f"cannot make {dest}: {err.strerror}") from None
    return ["setpriv", f"--reuid={owner}", f"--regid={disk.stat().st_gid}", "--clear-groups",
            "--no-new-privs", *command]


def _stop(driver: QemuDriver, uuid: str) -> bool:
    """Stop a running guest's vCPUs; whether it was running, so must run again."""
    if driver.pid(uuid) is None:
        return False
    with QMP(driver.paths(uuid).qmp, driver.qmp_timeout) as qmp:
        if run_state(qmp) != "running":
            return False
        qmp.execute("stop")
    return True


class Snapshots:
    """The node's snapshots in progress and done, by instance and image id."""

    def __init__(self, driver: QemuDriver, node_id: str,
                 client: Callable[[], httpx.Client]) -> None:
        # client makes an HTTP client to the controller with the node's certificate.
        self.driver = driver
        self.node_id = node_id
        self.client = client
        self.running: dict[str, str] = {}
        self.done: set[str] = set()
        self._lock = threading.Lock()

    def busy(self, uuid: str) -> bool:
        """Whether instance uuid is being snapshotted (leave its VM alone meanwhile)."""
        with self._lock:
            return uuid in self.running

    def request(self, uuid: str, image_id: str) -> None:
        """Start snapshot image_id of instance uuid, unless it is running or done."""
        with self._lock:
            if image_id in self.done or uuid in self.running:
                return
            self.running[uuid] = image_id
        threading.Thread(target=self._run, args=(uuid, image_id), daemon=True,
                         name=f"snapshot-{image_id[:8]}").start()

    def _run(self, uuid: str, image_id: str) -> None:
        dest = self.driver.paths(uuid).directory / f".snapshot-{image_id}.qcow2"
        answered = False
        try:
            answered = self._snapshot(uuid, image_id, dest)
        except Exception:  # noqa: BLE001 - a thread must not die silently; retried later
            log.exception("snapshot %s of instance %s", image_id, uuid)
        finally:
            if answered:
                dest.unlink(missing_ok=True)
            with self._lock:
                self.running.pop(uuid, None)
                if answered:
                    self.done.add(image_id)

    def _snapshot(self, uuid: str, image_id: str, dest: Path) -> bool:
        """Take and upload, or report why not; whether the controller got an answer."""
        path = f"/cluster/v1/nodes/{self.node_id}/snapshots/{image_id}"
        with self.client() as http:
            try:
                if not dest.exists():
                    # A copy kept from an upload that could not reach the controller is
                    # sent again as it is: the guest is not stopped for each retry.
                    partial = dest.with_name(dest.name + ".partial")
                    take(self.driver, uuid, partial)
                    partial.replace(dest)
                check(http.put(path, content=_chunks(dest), headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(dest.stat().st_size)}))
                log.info("snapshot %s of instance %s uploaded", image_id, uuid)
                return True
            except httpx.TransportError as err:
                # The controller is out of reach: the reconciler asks again soon.
                log.warning("snapshot %s not uploaded: %s; will retry", image_id, err)
                return False
            except Exception as err:  # noqa: BLE001 - every failure is reported
                message = f"{type(err).__name__}: {err}"[:4096]
                log.warning("snapshot %s of instance %s failed: %s", image_id, uuid, message)
            try:
                check(http.post(f"{path}/error", json={"message": message}))
            except ClusterError as err:
                # 404: the snapshot is no longer pending (deleted, or already done).
                return err.status < 500
            except httpx.HTTPError:
                return False
            return True


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            yield chunk
