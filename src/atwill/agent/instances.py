"""Converging a node's instances to the desired state, and reporting what really runs.

The agent never assumes success: it reports what QEMU says (via pidfile and QMP),
and the controller moves the server's status on that report alone.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from .. import pki
from ..core.volume_devices import Volume, VolumeSpecError, boots_from_volume
from .client import client, tls_context
from .config import AgentConfig
from .hypervisor import configdrive, disks, tap, volumes
from .hypervisor.qemu import QemuDriver
from .hypervisor.spec import InstanceSpec, Nic
from .instance_metrics import InstanceMetrics
from .instance_states import InstanceStates
from .kvm import kvm_probe
from .lanes import Lanes
from .live_migrations import LiveMigrations
from .snapshot import Snapshots

log = logging.getLogger("atwill.agent.instances")
# What the controller keeps of a console log: the tail sent apart from heartbeats.
CONSOLE_REPORT_BYTES = 64 * 1024
# Every tap an instance's port gets (hypervisor.tap.tap_name): how leftovers are found.
TAP_RULE = re.compile(rf"{tap.PREFIX}[0-9a-f]{{{tap.IFNAMSIZ - len(tap.PREFIX)}}}")


class InstanceManager:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        # QEMU, dnsmasq and the metadata service run as users of their own, which must be
        # able to pass through the state directory (0711: nothing in it can be listed).
        config.state_dir.chmod(0o711)
        self.cache_dir = config.state_dir / "images"
        self.driver = QemuDriver(config.instances_dir,
                                 overlay_templates=self.cache_dir / disks.TEMPLATES)
        # The heartbeat's view of each VM, never waiting long on a busy QEMU monitor.
        self.states = InstanceStates(lambda uuid: self.driver.state(uuid))
        # The controller through the overlay (from the desired state), when there is one.
        self.overlay_url: str | None = None
        # Called when an instance has started: the agent reports at once (ACTIVE sooner).
        self.on_started: Callable[[], None] = lambda: None
        self.snapshots = Snapshots(self.driver, config.node_id, self._controller)
        self.errors: dict[str, str] = {}
        # Builds that failed here: the controller reschedules each on its reported error,
        # so this node never tries it again (a retry racing the reschedule ran the server
        # on two nodes while the controller was unreachable). Forgotten once unwanted, or
        # when a new rebuild (an evacuation back here) asks for a new build: id -> serial.
        self.failed_builds: dict[str, int] = {}
        self.reboots: dict[str, int] = {}
        self.rebuilds: dict[str, int] = {}
        # Each instance's volumes as last converged: id -> "attached" | "error: …".
        self.volumes: dict[str, dict[str, str]] = {}
        # The attempt each of those outcomes was for: volume id -> the attachment id its
        # desired entry named (none for a volume not wanted: a detach's outcome). The
        # controller ignores an error of another attempt (core/volume_transitions).
        self.attempts: dict[str, dict[str, str]] = {}
        self._console_digest: dict[str, str] = {}
        # Instances present here that the controller neither wants nor destroys.
        self.kept: set[str] = set()
        # Each instance's operations in a lane of its own; a finished one reports at once.
        self.lanes = Lanes(on_done=self._lane_done)
        # Set in a lane whose converge found its instance as wanted: nothing to report.
        self._unchanged = threading.local()
        # New instances whose QEMU a lane is about to start (image cached): until they run
        # the data plane waits (wait_launches), so their starts have the cores.
        self._launching: set[str] = set()
        self._launch_done = threading.Condition()
        # Instances a lane saw running just now (QMP said so at the end of their start):
        # the beat that reports them asks neither their state nor their counters again
        # from a QEMU still busy setting up (tens of ms on the way to ACTIVE).
        self._started: dict[str, float] = {}
        # Each running instance's CPU, memory, disk and network counters, for Prometheus.
        self.metrics = InstanceMetrics(self.driver)
        # Instances this node sends or receives in a live migration (live_migrations.py).
        self.migrations = LiveMigrations(self)
        # The controller's list of removed nodes' certificates: a storage node's certificate
        # is checked against it before QEMU connects to an export (nbd_check.py).
        self.volume_crl: bytes | None = None

    def set_volume_crl(self, pem: str | None) -> None:
        """Keep the controller's revocation list for the next checks of an export; one that
        does not parse is ignored (every check would fail on it)."""
        if pem is None:
            return
        try:
            pki.crl_serials(pem.encode())
        except ValueError:
            log.warning("the controller's certificate revocation list does not parse")
            return
        self.volume_crl = pem.encode()

    # converge ------------------------------------------------------------------
    def taps(self, instances: list[dict[str, Any]]) -> None:
        """Make every wanted instance's taps (the data plane plugs them in); drop the rest."""
        wanted = wanted_taps(instances)
        present = tap.links()  # read once for both: this runs before every start
        tap.ensure(wanted, present=present)
        prune_taps(set(wanted), present)

    def converge(self, instances: list[dict[str, Any]], destroy: Collection[str] = ()) -> None:
        """Start bringing each instance to what is wanted, each in its own lane: returns
        without waiting; a busy instance is brought there by a later converge.

        Only what the controller names in destroy (deleted, or evacuated to another node)
        is destroyed; any other instance it does not list is stopped with its disk kept:
        an unknown instance's disk may be the only copy of someone's data."""
        wanted = {i["id"]: i for i in instances}
        present = set(self.driver.uuids())
        for uuid in present - set(wanted):
            if uuid in destroy:
                self.kept.discard(uuid)
                self.lanes.submit(uuid, self._delete, uuid)
            elif uuid not in self.kept and self.lanes.submit(uuid, self._delete, uuid, True):
                self.kept.add(uuid)
                log.warning("instance %s is not this node's to run: stopped, disk kept", uuid)
        self.kept &= set(self.driver.uuids()) - set(wanted)
        for uuid in set(self.errors) - set(wanted):
            self.errors.pop(uuid, None)  # a build that never started, no longer wanted
        for uuid in set(self.failed_builds) - set(wanted):
            del self.failed_builds[uuid]
        self.migrations.prune(set(wanted))
        for uuid, inst in wanted.items():
            if self.migrations.handles(inst):
                continue  # its migration's lane alone acts on it
            if inst.get("snapshot"):
                self.snapshots.request(uuid, inst["snapshot"]["image_id"])
            if self.snapshots.busy(uuid):
                continue  # its VM is stopped for the copy; the snapshot resumes it
            if inst.get("building") and self.failed_builds.get(uuid) == inst["rebuild_serial"]:
                continue  # its error is reported; the controller places it elsewhere
            new = bool(inst.get("building")) and uuid not in present
            if new:
                with self._launch_done:
                    self._launching.add(uuid)
            if not self.lanes.submit(uuid, self._converge_reported, inst) and new:
                self._launched(uuid)
        in_use = {i["image"]["id"] for i in instances if i.get("image")}
        if self.cache_dir.is_dir():
            disks.gc(self.cache_dir, in_use)

    def _delete(self, uuid: str, keep_disk: bool = False) -> None:
        taps = self._taps_of(uuid)
        if keep_disk:
            self.driver.stop(uuid, timeout=STOP_TIMEOUT)
        else:
            self.driver.delete(uuid)
        for name in taps:
            tap.delete(name)
        for table in (self.errors, self.reboots, self.rebuilds, self._console_digest,
                      self.volumes, self.attempts):
            table.pop(uuid, None)
        log.info("instance %s %s", uuid, "stopped, its disk kept" if keep_disk else "deleted")

    def still_running(self, instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Those of instances whose VM runs: all a desired state cached before a restart
        may keep, since the instance may have been rebuilt elsewhere meanwhile."""
        return [i for i in instances if self.driver.state(i["id"]) in ("running", "paused")]

    def stop_all(self) -> list[str]:
        """Stop every VM (QEMU quits), keeping disks and specs; the instances stopped."""
        self.lanes.wait(timeout=STOP_TIMEOUT * 4)  # a start in flight ends first
        stopped = []
        for uuid in self.driver.uuids():
            try:
                self.driver.stop(uuid, timeout=STOP_TIMEOUT)
                stopped.append(uuid)
            except Exception:  # noqa: BLE001 - stop the others whatever one does
                log.exception("instance %s could not be stopped", uuid)
        return stopped

    def _taps_of(self, uuid: str) -> list[str]:
        spec = self.driver.paths(uuid).spec
        try:
            return [n.tap for n in InstanceSpec.from_json(spec.read_text()).nics]
        except (OSError, ValueError, TypeError):
            return []

    def _lane_done(self) -> None:
        # Every revision converges every instance; a beat for each that was already as
        # wanted only took the cores from the starts being reported.
        if getattr(self._unchanged, "set", False):
            self._unchanged.set = False
            return
        self.on_started()

    def wait_launches(self, timeout: float) -> bool:
        """Wait (at most timeout) until no new instance converge() handed to a lane is
        still on its way to a running QEMU; whether none is."""
        with self._launch_done:
            return self._launch_done.wait_for(lambda: not self._launching, timeout)

    def _launched(self, uuid: str) -> None:
        with self._launch_done:
            self._launching.discard(uuid)
            self._launch_done.notify_all()

    def _converge_reported(self, inst: dict[str, Any]) -> None:
        try:
            self._converge_lane(inst)
        finally:
            self._launched(inst["id"])

    def _converge_lane(self, inst: dict[str, Any]) -> None:
        uuid = inst["id"]
        building = bool(inst.get("building")) and self.driver.state(uuid) == "missing"
        before = (self.errors.get(uuid), self.volumes.get(uuid), self.attempts.get(uuid))
        acted = True
        try:
            acted = self._converge_one(inst)
            self.errors.pop(uuid, None)
        except Exception as err:  # noqa: BLE001 - reported to the controller (a build is
            # rescheduled elsewhere on it; anything else is retried here)
            log.exception("instance %s could not be converged", uuid)
            self.errors[uuid] = f"{type(err).__name__}: {err}"
            if building:
                self.failed_builds[uuid] = inst["rebuild_serial"]
        if "volumes" in inst and self.driver.state(uuid) != "missing":
            self._sync_volumes(inst)
        self._unchanged.set = not acted and before == (
            self.errors.get(uuid), self.volumes.get(uuid), self.attempts.get(uuid))

    def _sync_volumes(self, inst: dict[str, Any]) -> None:
        """Hot-plug or unplug (or, stopped, keep for the next start) the instance's
        volumes; a volume's failure is that volume's, never the instance's."""
        uuid = inst["id"]
        wanted, refused = parse_volumes(inst.get("volumes") or [])
        tried = attempts(inst.get("volumes") or [])
        try:
            outcome = self.driver.sync_volumes(uuid, wanted)
        except Exception as err:  # noqa: BLE001 - reported per volume, retried
            log.exception("instance %s: volumes could not be converged", uuid)
            outcome = {v.volume_id: f"error: {type(err).__name__}: {err}" for v in wanted}
        outcomes = {**outcome, **refused}
        # Outcomes first, then their attempts: report() reads them the other way round.
        self.volumes[uuid] = outcomes
        self.attempts[uuid] = {v: tried[v] for v in outcomes if v in tried}

    def _converge_one(self, inst: dict[str, Any]) -> bool:
        """Bring the instance to what is wanted; whether that changed something still to
        be reported."""
        uuid = inst["id"]
        state = self.driver.state(uuid)
        rebuilt = inst["rebuild_serial"] > self.rebuilds.setdefault(
            uuid, inst["rebuild_serial"]) and state != "missing"
        if rebuilt:
            self.driver.delete(uuid)
            state = "missing"
        self.rebuilds[uuid] = inst["rebuild_serial"]
        power = inst["power"]
        if state == "missing":
            created = power == "running" or bool(inst.get("building"))
            if created:
                self._create(inst)
            self.reboots[uuid] = inst["reboot_serial"]
            return rebuilt and not created  # a start reports itself (on_started)
        if inst["reboot_serial"] > self.reboots.setdefault(uuid, inst["reboot_serial"]):
            if state in ("shutoff", "suspended"):
                self.driver.start(self._spec(inst))
            else:
                self.driver.reboot(uuid, hard=inst.get("reboot_hard", False))
            self.reboots[uuid] = inst["reboot_serial"]
            return True
        return self._power(uuid, state, power, inst)

    def _power(self, uuid: str, state: str, power: str, inst: dict[str, Any]) -> bool:
        if power == "running":
            if state == "paused":
                self.driver.unpause(uuid)
            elif state == "suspended":
                self.driver.resume(uuid)
            elif state in ("shutoff", "error"):
                self.driver.start(self._spec(inst))
            else:
                return False
        elif power == "stopped" and state in ("running", "paused"):
            self.driver.stop(uuid)
        elif power == "paused" and state == "running":
            self.driver.pause(uuid)
        elif power == "suspended" and state in ("running", "paused"):
            self.driver.suspend(uuid)
        else:
            return False
        return True

    def _create(self, inst: dict[str, Any]) -> None:
        spec = self._spec(inst)
        if inst.get("config_drive"):
            configdrive.build_iso(self.driver.paths(inst["id"]).config_drive,
                                  inst["metadata"], inst["network_data"],
                                  (inst.get("user_data") or "").encode() or None)
            spec = InstanceSpec(**{**spec.__dict__,
                                   "config_drive": self.driver.paths(inst["id"]).config_drive})
        self.driver.start(spec)
        self._started[inst["id"]] = time.monotonic()
        self.on_started()
        log.info("instance %s started", inst["id"])

    def _spec(self, inst: dict[str, Any]) -> InstanceSpec:
        image = inst.get("image") or {}
        wanted, _ = parse_volumes(inst.get("volumes") or [])
        # Booted from a volume: the storage node made it from the image, not this node.
        local = not boots_from_volume(wanted)
        if local and not (self.cache_dir / str(image.get("id"))).is_file():
            self._launched(inst["id"])  # a fetch first: no one waits for it (wait_launches)
        base = self._image(image) if local else None
        nics = [Nic(mac=n["mac"], tap=tap.tap_name(n["port_id"]), mtu=n.get("mtu", 1500))
                for n in inst.get("nics", [])]
        props = {k: str(v) for k, v in (image.get("properties") or {}).items()
                 if k.startswith("hw_")}
        kvm = kvm_probe()
        return InstanceSpec(
            uuid=inst["id"], name=inst["name"], vcpus=inst["vcpus"],
            memory_mb=inst["memory_mb"], disk_gb=max(inst["disk_gb"], 1), image_path=base,
            image_format=image.get("disk_format") or "qcow2", nics=nics,
            accel="kvm" if kvm else "tcg", cpu_mode="host-passthrough" if kvm else None,
            pci_devices=list(inst.get("pci_devices") or []), hw=props,
            volumes=wanted,
            # The node's key only for attachments without their own (made before 0026).
            volume_creds=self._volume_creds() if any(not v.psk_key for v in wanted)
            else None)

    def _volume_creds(self) -> Path | None:
        """The NBD client credentials, read by QEMU at start (before it drops root).

        Only a QEMU started with a volume attached before migration 0026 gets them: they
        are the node's own key, and a guest escaping into a QEMU that holds them would act
        as this node. Later attachments bring their own keys (volumes.py)."""
        if not self.config.key.exists():
            return None
        return volumes.client_creds(self.config.state_dir / "pki" / "nbd-client",
                                    self.config.ca, self.config.cert, self.config.key,
                                    self.volume_crl)

    def _controller(self) -> httpx.Client:
        """A client to the controller, through the overlay when there is one."""
        context = tls_context(self.config.ca, self.config.cert, self.config.key)
        return client(self.overlay_url or self.config.controller_url, context,
                      timeout=httpx.Timeout(60.0, read=600.0))

    def _image(self, image: dict[str, Any]) -> Path:
        if not image.get("id"):
            raise ValueError("the instance has no image")
        path = f"/cluster/v1/nodes/{self.config.node_id}/images/{image['id']}"
        context = tls_context(self.config.ca, self.config.cert, self.config.key)
        # Several controllers share the image files (docs/controllers.md): a download
        # cut by a dying controller goes on from the next one, not as a build failure
        # (that would reschedule the server while this node retries it: two copies).
        # With several controllers on the overlay, the list holds their overlay URLs first.
        first = self.overlay_url or self.config.controller_url
        bases = [first, *(u for u in self.config.controller_urls if u != first)]

        def fetch(dest: Path) -> None:
            for index, base in enumerate(bases):
                try:
                    with httpx.stream("GET", base + path, verify=context, timeout=60) as resp:
                        resp.raise_for_status()
                        with open(dest, "wb") as out:
                            for chunk in resp.iter_bytes(1 << 20):
                                out.write(chunk)
                    return
                except httpx.TransportError as error:
                    if index == len(bases) - 1:
                        raise
                    log.warning("image %s from %s failed (%s); trying %s", image["id"], base,
                                error, bases[index + 1])

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir.chmod(0o711)  # QEMU's users reach their base image; none lists them
        return disks.ensure_cached(self.cache_dir, image["id"], image.get("checksum"), fetch,
                                   image.get("os_hash_value"))

    # report ---------------------------------------------------------------------
    def report(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        uuids, now = self.driver.uuids(), time.monotonic()
        started, self._started = self._started, {}
        # Only while its QEMU is still there (its pidfile's process, no QMP asked): one
        # that died since its lane saw it run is asked as any other, not reported ACTIVE.
        fresh = {u for u, at in started.items()
                 if now - at < FRESH_START and u in uuids and self.driver.pid(u) is not None}
        states = self.states.states([u for u in uuids if u not in fresh])
        states.update({u: "running" for u in fresh})
        for uuid, state in states.items():
            entry: dict[str, Any] = {"state": state,
                                     "reboot_serial": self.reboots.get(uuid, 0),
                                     "rebuild_serial": self.rebuilds.get(uuid, 0)}
            if state == "error":
                entry["error"] = "QEMU is in an error state or does not answer its monitor"
            # Attempts read before outcomes, which _sync_volumes (another thread) writes
            # in the other order: an old attempt may go with a newer outcome (its error
            # ignored for a beat), never an old error with the newer attempt (that would
            # roll back a quick re-attach the node holds).
            tried = self.attempts.get(uuid)
            outcomes = self.volumes.get(uuid)
            if outcomes is not None:
                entry["volumes"] = dict(outcomes)
                entry["volume_attempts"] = dict(tried or {})
            if state in ("running", "paused") and uuid not in fresh and \
                    (sample := self.metrics.sample(uuid)):
                entry["metrics"] = sample
            out[uuid] = entry
        self.metrics.forget(set(out))
        for uuid, error in self.errors.items():
            out.setdefault(uuid, {"state": "error"}).update(state="error", error=error)
        self.migrations.annotate(out)
        return out

    def console_changes(self) -> dict[str, str]:
        """Each instance's console tail (at most 64 KiB) that changed since it was sent."""
        out = {}
        # Not driver.list(): asking each QMP socket for its state from this thread would
        # collide with the heartbeat's own query (QMP takes one client at a time).
        for uuid in self.driver.uuids():
            text = self.driver.console(uuid)
            tail = text.encode()[-CONSOLE_REPORT_BYTES:].decode(errors="ignore")
            if hashlib.sha1(tail.encode()).hexdigest() != self._console_digest.get(uuid):
                out[uuid] = tail
        return out

    def console_sent(self, uuid: str, tail: str) -> None:
        self._console_digest[uuid] = hashlib.sha1(tail.encode()).hexdigest()

    @staticmethod
    def running_count(report: dict[str, dict[str, Any]]) -> int:
        """The VMs of a report that run (or are paused)."""
        return sum(1 for entry in report.values() if entry["state"] in ("running", "paused"))


STOP_TIMEOUT = 5.0
# A start seen this recently is reported "running" as its lane saw it, once, if its QEMU
# process is alive at report time (report).
FRESH_START = 1.0


def parse_volumes(entries: list[dict[str, Any]]) -> tuple[list[Volume], dict[str, str]]:
    """The desired volumes that can be attached, and an error for each that cannot."""
    wanted, refused = [], {}
    for entry in entries:
        try:
            wanted.append(Volume.from_desired(entry))
        except VolumeSpecError as err:
            refused[str(entry.get("volume_id"))] = f"error: {err}"
    return wanted, refused


def attempts(entries: list[dict[str, Any]]) -> dict[str, str]:
    """Volume id -> the attachment id its desired entry names (the attempt its outcome is
    for), by the id as an outcome is keyed (the parsed one, else the id as given)."""
    out = {}
    for entry in entries:
        att = entry.get("attachment_id") if isinstance(entry, dict) else None
        if not isinstance(att, str) or not 0 < len(att) <= 64:
            continue
        given = str(entry.get("volume_id"))
        try:
            out[str(UUID(given))] = att
        except ValueError:
            pass
        out[given] = att
    return out


def wanted_taps(instances: list[dict[str, Any]]) -> dict[str, int | None]:
    """Tap name -> MTU of every NIC of the wanted instances."""
    return {tap.tap_name(nic["port_id"]): nic.get("mtu")
            for inst in instances for nic in inst.get("nics", [])}


def prune_taps(wanted: set[str], present: Collection[str] | None = None) -> list[str]:
    """Remove every instance tap (by the naming rule) not wanted, started VM or not;
    `present`: the taps here (read now if not given)."""
    stale = sorted(name for name in (tap.links() if present is None else present)
                   if TAP_RULE.fullmatch(name)
                   and name not in wanted)
    for name in stale:
        tap.delete(name)
        log.info("tap %s removed: no wanted instance uses it", name)
    return stale


def kept_instances(config: AgentConfig) -> list[str]:
    """Instances whose files are still on this host (kept by a removal or a leave)."""
    return QemuDriver(config.instances_dir).uuids()


def remove_all(config: AgentConfig, purge: bool = True) -> list[str]:
    """Stop every instance and remove its taps; purge: delete their disks and the cache too.

    Returns the instances whose disks were kept.
    """
    manager = InstanceManager(config)
    for uuid in manager.driver.uuids():
        manager._delete(uuid, keep_disk=not purge)
    prune_taps(set())
    if not purge:
        return kept_instances(config)
    shutil.rmtree(manager.cache_dir, ignore_errors=True)
    return []
