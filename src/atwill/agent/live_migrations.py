"""This node's part in live migrations: receiving ("incoming") or sending ("migrate_to").

Each runs in its instance's lane, so no converge touches the instance meanwhile (a
source's guest paused by the switch-over must never be resumed here), and is reported
in the instance's heartbeat entry until the controller stops speaking of it.
Both ends use the migration's own TLS key from the controller (hypervisor/migration.py);
an order without one is refused.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.nodereports import REPORT_ERROR_CHARS
from ..core.volume_devices import boots_from_volume
from ..hostlib.run import Reverter
from .config import write_private
from .hypervisor import configdrive, disks
from .hypervisor.migration import (
    Aborted,
    Order,
    Tls,
    connected,
    forget_keys,
    free_ports,
    key_directory,
    receive,
    send,
    stop_serving,
)
from .hypervisor.qemu import RUNAS_FILE, _recorded_owner
from .hypervisor.qmp import QMP
from .hypervisor.spec import InstancePaths, InstanceSpec

if TYPE_CHECKING:
    from .instances import InstanceManager

log = logging.getLogger("atwill.agent.migrations")
# Nova's live_migration_completion_timeout: 800 s per GiB of memory and disk to move.
SECONDS_PER_GIB = 800
START_TIMEOUT = 30.0
# How long a destination's QEMU may take to load the guest's last state and run it.
ARRIVAL_GRACE = 15.0


class LiveMigrations:
    def __init__(self, manager: InstanceManager) -> None:
        self.manager, self.driver = manager, manager.driver
        self.incoming: dict[str, dict[str, Any]] = {}  # what each receiving lane reported
        self.outgoing: dict[str, dict[str, Any]] = {}  # what each sending lane reported
        self.orders: dict[str, Order] = {}  # the latest migrate_to (abort, force) per uuid
        self._guard = threading.Lock()

    def handles(self, inst: dict[str, Any]) -> bool:
        """Take inst over while a migration speaks of it; whether converge must leave it."""
        uuid = inst["id"]
        if "incoming" in inst:
            order, seen = inst["incoming"], self.incoming.get(uuid, {})
            if order.get("source_lost"):
                if seen.get("migration") != order["migration"] or not (
                        "arrived" in seen or "error" in seen):
                    self.manager.lanes.submit(uuid, self._settle_lost, uuid,
                                              order["migration"])
            elif seen.get("migration") != order["migration"]:
                self.manager.lanes.submit(uuid, self._receive, inst)
            return True
        if "migrate_to" in inst:
            order = Order.of(inst["migrate_to"])
            with self._guard:
                self.orders[uuid] = order
            if self.outgoing.get(uuid, {}).get("migration") != order.migration:
                self.manager.lanes.submit(uuid, self._send, inst, order.migration)
            return True
        with self._guard:
            self.orders.pop(uuid, None)
        self.outgoing.pop(uuid, None)
        arrived = self.incoming.pop(uuid, {})
        if "nbd_port" in arrived:
            # It arrived: this node runs it now; its disk is no longer exported.
            self.manager.lanes.submit(uuid, self._arrived, uuid)
            return True
        return False

    def prune(self, wanted: set[str]) -> None:
        """Forget migrations of instances the controller no longer lists here: a source's
        once the guest moved, a destination's once the migration failed."""
        for table in (self.incoming, self.outgoing):
            for uuid in set(table) - wanted:
                table.pop(uuid, None)

    def annotate(self, report: dict[str, dict[str, Any]]) -> None:
        """Add each migration's state to its instance's heartbeat entry."""
        for uuid, entry in list(self.incoming.items()):
            report.setdefault(uuid, {"state": "paused"})["incoming"] = dict(entry)
        for uuid, entry in list(self.outgoing.items()):
            report.setdefault(uuid, {"state": "running"})["migration"] = dict(entry)

    # destination ---------------------------------------------------------------
    def _receive(self, inst: dict[str, Any]) -> None:
        uuid, order = inst["id"], inst["incoming"]
        try:
            if self.driver.state(uuid) != "missing":
                # A copy left by an earlier attempt: the instance runs on its source.
                self.driver.delete(uuid)
            listen = order.get("listen")
            if not listen:
                raise RuntimeError("this node has no overlay address to receive on")
            tls = Tls.of(order.get("tls"))
            spec = self._incoming_spec(inst)
            nbd_port, port = free_ports(listen)
            self._launch(spec, str(order.get("console") or ""))
            paths = self.driver.paths(uuid)
            # Kept until the guest arrived (or the copy is deleted with its directory): a
            # server's PSK file is read by GnuTLS at each handshake, not by object-add.
            keys = key_directory(paths.directory, _owner(paths), tls)
            local = paths.disk.exists()  # else its disks are all volumes: none copied
            with QMP(paths.qmp, self.driver.qmp_timeout) as qmp:
                receive(qmp, listen, nbd_port if local else None, port, keys,
                        post_copy=order.get("post_copy") is True)
            self.incoming[uuid] = {"migration": order["migration"],
                                   "nbd_port": nbd_port if local else None, "port": port,
                                   **({} if local else {"disk": False})}
            log.info("instance %s: waiting for migration %s on %s:%s (disk on :%s)", uuid,
                     order["migration"], listen, port, nbd_port)
        except Exception as err:  # noqa: BLE001 - reported; the controller fails it
            log.exception("instance %s: cannot receive migration %s", uuid,
                          order["migration"])
            self.driver.delete(uuid)
            self.incoming[uuid] = {"migration": order["migration"],
                                   "error": f"{type(err).__name__}: {err}"[
                                       :REPORT_ERROR_CHARS]}
        self.manager.on_started()  # tell the controller now

    def _incoming_spec(self, inst: dict[str, Any]) -> InstanceSpec:
        spec = self.manager._spec(inst)  # noqa: SLF001 - the same devices as a start
        # Volumes are plugged in from their export as they are on the source (the
        # export admits this node's own key meanwhile); only a local disk is mirrored.
        if any(not volume.psk_key for volume in spec.volumes):
            raise RuntimeError("a volume without a key of its own cannot be live-migrated")
        if boots_from_volume(spec.volumes):
            spec = replace(spec, image_path=None)
        elif spec.image_path is None:
            raise RuntimeError("the instance has neither an image nor a boot volume")
        if inst.get("config_drive"):
            path = self.driver.paths(inst["id"]).config_drive
            path.parent.mkdir(parents=True, exist_ok=True)
            configdrive.build_iso(path, inst["metadata"], inst["network_data"],
                                  (inst.get("user_data") or "").encode() or None)
            spec = replace(spec, config_drive=path)
        return spec

    def _launch(self, spec: InstanceSpec, console: str) -> None:
        """Start QEMU with spec's devices and a new disk on the same base, waiting for
        the guest's state (-incoming defer) instead of booting it."""
        paths = self.driver.paths(spec.uuid)
        image_format = disks.verify_image(spec.image_path, spec.image_format) \
            if spec.image_path is not None else spec.image_format
        self.driver.check_exports(spec)  # its volumes' storage nodes, as at a start
        with Reverter() as revert:
            paths.directory.mkdir(parents=True, exist_ok=True)
            revert.add(lambda: shutil.rmtree(paths.directory, ignore_errors=True))
            paths.spec.write_text(spec.to_json())
            if spec.image_path is not None:
                disks.create_overlay(spec.image_path, paths.disk, spec.disk_gb,
                                     image_format)
            # QEMU appends to it: `console log show` goes on from the source's output.
            log_file = spec.console_log or paths.console_log
            write_private(log_file, console.encode())
            self.driver._launch(spec, paths, revert, START_TIMEOUT,  # noqa: SLF001
                                incoming=True)

    def _settle_lost(self, uuid: str, migration: int) -> None:
        """The source went off mid-migration (the controller knows it fenced): the guest
        is here if this QEMU runs it (the stream had ended), else it never will be, and
        the copy goes. A monitor that does not answer is asked again at the next pass."""
        seen = self.incoming.get(uuid, {})
        if seen.get("migration") == migration and ("arrived" in seen or "error" in seen):
            return
        status = self._incoming_status(uuid)
        if status is None:
            return
        if status == "running":
            self.incoming[uuid] = {**seen, "migration": migration, "arrived": True}
            log.warning("instance %s: its source went down after the guest arrived here "
                        "(migration %s)", uuid, migration)
        else:
            self.driver.delete(uuid)
            self.incoming[uuid] = {"migration": migration, "error": (
                f"the guest had not arrived (its QEMU here was {status})")}
            log.warning("instance %s: its source went down before the guest arrived "
                        "(migration %s); the copy here is deleted", uuid, migration)
        self.manager.on_started()

    def _incoming_status(self, uuid: str) -> str | None:
        """QEMU's run state of a copy this node receives ("gone" without its process);
        None when its monitor does not answer."""
        if self.driver.pid(uuid) is None:
            return "gone"
        try:
            status = self.driver._status(uuid)  # noqa: SLF001 - the raw state: inmigrate
            if status == "running" and self._in_post_copy(uuid):
                # It runs, but part of its memory is still on the source: not arrived.
                return "running in post-copy"
            return status
        except Exception:  # noqa: BLE001 - busy or dying: asked again
            log.warning("instance %s: no answer from its QEMU's monitor", uuid,
                        exc_info=True)
            return None

    def _in_post_copy(self, uuid: str) -> bool:
        """Whether this incoming QEMU still pulls pages from its source (post-copy)."""
        execute = connected(self.driver.paths(uuid).qmp, self.driver.qmp_timeout)
        status = str((execute("query-migrate") or {}).get("status", ""))
        return status.startswith("postcopy")

    def _arrived(self, uuid: str) -> None:
        if self._still_incoming(uuid):
            # The migration ended without the guest (its source went away), and the
            # server was placed here again: this copy never ran; converge builds it.
            self.driver.delete(uuid)
            self.incoming.pop(uuid, None)
            log.warning("instance %s: the migrated guest never arrived; the copy is deleted",
                        uuid)
            return
        paths = self.driver.paths(uuid)
        stop_serving(connected(paths.qmp, self.driver.qmp_timeout))
        forget_keys(paths.directory)
        log.info("instance %s arrived: its disk export is stopped", uuid)

    def _still_incoming(self, uuid: str) -> bool:
        """Whether this copy never took the guest. The source reports its migration
        completed once it sent the last state; the QEMU here may still be loading it
        (seconds on a loaded TCG host), so it is given ARRIVAL_GRACE to start running."""
        deadline = time.monotonic() + ARRIVAL_GRACE
        while (status := self._incoming_status(uuid)) in ("inmigrate", None):
            # None: its monitor did not answer (busy loading it): asked again.
            if time.monotonic() >= deadline:
                return status == "inmigrate"
            time.sleep(0.2)
        return False

    # source --------------------------------------------------------------------
    def _send(self, inst: dict[str, Any], migration: int) -> None:
        uuid = inst["id"]
        state: dict[str, Any] = {"migration": migration, "status": "running"}
        self.outgoing[uuid] = state
        gib = max(1.0, (inst["memory_mb"] / 1024) + inst.get("disk_gb", 0))
        paths = self.driver.paths(uuid)
        execute = connected(paths.qmp, self.driver.qmp_timeout)
        keys = None
        try:
            keys = key_directory(paths.directory, _owner(paths),
                                 Tls.of(self._order(uuid, migration).tls))
            send(execute, lambda: self._order(uuid, migration), state.update,
                 SECONDS_PER_GIB * gib, keys, lambda: self._switched(uuid, state))
            log.info("instance %s: migration %s completed", uuid, migration)
        except Aborted:
            state["status"] = "cancelled"
            log.info("instance %s: migration %s cancelled", uuid, migration)
        except Exception as err:  # noqa: BLE001 - reported; the guest keeps running here
            if state.get("status") == "completed":  # only the tidying: the guest moved
                log.exception("instance %s: migration %s completed, its mirror not tidied",
                              uuid, migration)
            else:
                log.exception("instance %s: migration %s failed", uuid, migration)
                state.update(status="failed",
                             error=f"{type(err).__name__}: {err}"[:REPORT_ERROR_CHARS])
        finally:
            if keys is not None:
                shutil.rmtree(keys, ignore_errors=True)
        self.manager.on_started()

    def _switched(self, uuid: str, state: dict[str, Any]) -> None:
        """The guest runs on the destination: said at once, so the controller moves its
        ports while this node tidies the mirror (the guest's network follows then)."""
        state["status"] = "completed"
        self.manager.on_started()

    def _order(self, uuid: str, migration: int) -> Order:
        with self._guard:
            order = self.orders.get(uuid)
        if order is None or order.migration != migration:
            # The controller no longer asks for this migration (it gave up on it).
            return Order(migration=migration, host="", nbd_port=0, port=0, abort=True)
        return order


def _owner(paths: InstancePaths) -> Path | tuple[int, int] | None:
    """Whose QEMU reads the migration's key: the owner of its local disk, or (booted from
    a volume, no disk here) the user it runs as; None: root's (unconfined)."""
    if paths.disk.exists():
        return paths.disk
    return _recorded_owner(paths.directory / RUNAS_FILE)  # noqa: SLF001
