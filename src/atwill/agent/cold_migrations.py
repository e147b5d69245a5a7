"""The agent's side of a cold migration or resize (controller/servers/resize_agents.py).

The desired state's cold_migrations block names what this node sends and receives. A
source's instance has left its instances (the converge stops it, keeping its disk); once
QEMU is gone its disk, the instance's qcow2 overlay, is uploaded to the controller. A
destination fetches that disk into the instance's directory, grows it to the new
flavor's root size and says so; the instance is then in its instances and starts on the
same base image, fetched as for any instance. Either says why if it cannot. Each step
runs in a thread of its own, once per migration, so converging goes on meanwhile.
"""

from __future__ import annotations

import json
import logging
import shutil
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


def grow(disk: Path, size_gb: int) -> None:
    """Grow the qcow2 disk to size_gb (never shrink), opening the file alone: its backing
    image is named at each start, never taken from its header (the guest's to write)."""
    disks.verify_overlay(disk)
    name = "json:" + json.dumps({"driver": "qcow2", "backing": None,
                                 "file": {"driver": "file", "filename": str(disk)}})
    info = json.loads(run(["qemu-img", "info", "--output", "json", name], timeout=60).stdout)
    if size_gb * GIB > int(info["virtual-size"]):
        run(["qemu-img", "resize", "-q", name, f"{size_gb}G"], timeout=60)


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
            else:
                log.warning("cold migration %s failed: %s", key, err.message)
                answered = self._report_error(item, err.message[:4096])
        except httpx.TransportError as err:
            log.warning("cold migration %s: the controller is out of reach (%s); will "
                        "retry", key, err)
        except Exception as err:  # noqa: BLE001 - every failure is reported
            log.exception("cold migration %s failed", key)
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


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            yield chunk
