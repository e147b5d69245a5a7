"""QemuDriver: daemonized QEMU processes per instance, found again by pidfile and QMP socket."""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from atwill.agent.config import write_private
from atwill.agent.hypervisor import disks, suspend
from atwill.agent.hypervisor.base import State
from atwill.agent.hypervisor.confine import confine, disk_owner, kill_strays
from atwill.agent.hypervisor.qmp import QMP, QMPError, run_state
from atwill.agent.hypervisor.spec import InstancePaths, InstanceSpec, psk_dir, qemu_argv
from atwill.agent.hypervisor.volumes import (
    DETACH_TIMEOUT,
    VolumeError,
    Volumes,
    checker,
    probe_in,
    suspended_outcome,
    write_psk,
)
from atwill.core import guest_ids
from atwill.core.volume_devices import NODE_PREFIX, Volume, boots_from_volume, node_name
from atwill.hostlib.run import ChildProcess, HostCommandError, Reverter, alive, run

log = logging.getLogger("atwill.agent.qemu")
SOCKETS_DIR = Path("/run/atwill/qmp")
# A node in the default state directory keeps its sockets where they always were (the
# QEMUs running across an agent upgrade stay reachable).
DEFAULT_INSTANCES_DIR = Path("/var/lib/atwill/instances")
# QMP run states (query-status) as the instance states the controller knows.
RUN_STATES: dict[str, State] = {
    "running": "running",
    "shutdown": "shutoff",
    "internal-error": "error", "io-error": "error", "guest-panicked": "error",
}
CONSOLE_TAIL_BYTES = 1 << 20
RUNAS_FILE = "runas"


def sockets_of(instances_dir: Path) -> Path:
    """Where the QMP sockets of instances_dir's QEMUs go: a directory of that node's own.

    Two nodes on one machine (a lab, a test) both run an instance while it live-migrates
    between them; in one directory the destination's socket replaced the source's, so the
    source agent steered the destination's QEMU (its disk mirror aimed at itself) and lost
    its own guest's monitor once the destination's copy was gone. Short: sun_path holds
    107 bytes, and a node's state directory may be long.
    """
    if instances_dir.absolute() == DEFAULT_INSTANCES_DIR:
        return SOCKETS_DIR
    digest = hashlib.sha256(str(instances_dir.absolute()).encode()).hexdigest()[:12]
    return SOCKETS_DIR / digest


class DriverError(RuntimeError):
    """An instance operation that cannot be done in the instance's present state."""


class QemuDriver:
    """Runs instances as daemonized QEMU processes under instances_dir/<uuid>/
    (a base.Hypervisor)."""

    def __init__(self, instances_dir: Path, sockets_dir: Path | None = None,
                 launcher: Sequence[str] = (), sandbox: bool = True,
                 qmp_timeout: float = 5.0, unprivileged: bool = True,
                 overlay_templates: Path | None = None) -> None:
        # launcher prefixes the QEMU command, e.g. ("ip", "netns", "exec", NS) in the lab;
        # unprivileged: QEMU drops root for a user of the instance's own (confine.py);
        # overlay_templates: where new overlays are copied from (disks.overlay_from_template)
        # instead of each made by qemu-img, or None.
        self.instances_dir = instances_dir
        self.overlay_templates = overlay_templates
        self.sockets_dir = sockets_dir or sockets_of(instances_dir)
        self.launcher = list(launcher)
        self.sandbox = sandbox
        self.unprivileged = unprivileged
        self.qmp_timeout = qmp_timeout
        # How long a guest gets to release a volume being detached (volumes.py).
        self.detach_timeout = DETACH_TIMEOUT
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()

    def paths(self, uuid: str) -> InstancePaths:
        """Where the instance's files are (put a config drive at .config_drive)."""
        return InstancePaths.under(self.instances_dir, self.sockets_dir, uuid)

    def pid(self, uuid: str) -> int | None:
        """The PID of the instance's QEMU process, or None."""
        return ChildProcess(self.paths(uuid).pidfile, uuid).pid()

    def start(self, spec: InstanceSpec, timeout: float = 30.0) -> None:
        """Create what is missing (directory, overlay) and run the instance; no-op if it runs."""
        with self._lock(spec.uuid):
            current = self.state(spec.uuid)
            if current in ("running", "paused", "error"):
                return
            if current == "suspended":
                self._resume(spec.uuid, timeout)
                return
            paths = self.paths(spec.uuid)
            local = not boots_from_volume(spec.volumes)
            if not local:
                spec = replace(spec, image_path=None)  # a boot volume: no disk here
            if local and spec.image_path is None:
                raise DriverError(f"instance {spec.uuid} has neither an image nor a boot "
                                  "volume")
            # Before anything is made: a refused image leaves no directory, overlay or QEMU.
            image_format = disks.verify_image(spec.image_path, spec.image_format) \
                if local and spec.image_path is not None else spec.image_format
            self.check_exports(spec)
            with Reverter() as revert:
                if not paths.directory.exists():
                    paths.directory.mkdir(parents=True)
                    revert.add(lambda: shutil.rmtree(paths.directory, ignore_errors=True))
                paths.spec.write_text(spec.to_json())
                if local and spec.image_path is not None and not paths.disk.exists():
                    revert.add(lambda: paths.disk.unlink(missing_ok=True))
                    if self.overlay_templates is not None:
                        disks.overlay_from_template(spec.image_path, paths.disk, spec.disk_gb,
                                                    image_format, self.overlay_templates)
                    else:
                        disks.create_overlay(spec.image_path, paths.disk, spec.disk_gb,
                                             image_format)
                self._launch(spec, paths, revert, timeout)

    def stop(self, uuid: str, timeout: float = 60.0) -> None:
        """ACPI power-off; after timeout (or at once when not running) QEMU quits anyway."""
        with self._lock(uuid):
            if self.pid(uuid) is None:
                return
            if self._status(uuid) == "running":
                self._try(uuid, "system_powerdown")
                if self._wait_exit(uuid, timeout):
                    self._gone(uuid)
                    return
            self._try(uuid, "quit")
            if not self._wait_exit(uuid, 5.0):
                ChildProcess(self.paths(uuid).pidfile, uuid).stop()
            self._gone(uuid)

    def reboot(self, uuid: str, hard: bool = False, timeout: float = 60.0) -> None:
        """Soft: power off by ACPI and start again (hard if that times out); hard: reset."""
        with self._lock(uuid):
            if self.pid(uuid) is None:
                self.start(self._spec(uuid), timeout)
                return
            if not hard and self._status(uuid) == "running":
                # Nova's soft reboot is a clean shutdown and a fresh start, not ACPI reboot,
                # which many guests (busybox here) treat as power-off.
                self._try(uuid, "system_powerdown")
                if self._wait_exit(uuid, timeout):
                    self.start(self._spec(uuid), timeout)
                    return
            with QMP(self.paths(uuid).qmp, self.qmp_timeout) as qmp:
                qmp.execute("system_reset")
                if run_state(qmp) != "running":
                    qmp.execute("cont")

    def pause(self, uuid: str) -> None:
        """Freeze the guest's vCPUs; its memory stays in the QEMU process."""
        self._execute(uuid, "stop")

    def unpause(self, uuid: str) -> None:
        """Let a paused guest run again."""
        self._execute(uuid, "cont")

    def suspend(self, uuid: str, timeout: float = 300.0) -> None:
        """Save the guest's state to a file and end QEMU (Nova's managed save)."""
        with self._lock(uuid):
            paths = self.paths(uuid)
            if self.pid(uuid) is None:
                raise DriverError(f"instance {uuid} is not running")
            if self._spec(uuid).pci_devices:
                raise DriverError("instances with PCI passthrough cannot be suspended")
            partial = paths.saved_state.with_name(paths.saved_state.name + ".partial")
            try:
                with QMP(paths.qmp, self.qmp_timeout) as qmp:
                    before = run_state(qmp)
                    try:
                        suspend.save_state(qmp, partial, timeout)
                    except QMPError:
                        if before == "running":
                            qmp.execute("cont")
                        raise
                partial.replace(paths.saved_state)
            finally:
                partial.unlink(missing_ok=True)
            self._try(uuid, "quit")
            self._wait_exit(uuid, 10.0)
            self._gone(uuid)

    def resume(self, uuid: str, timeout: float = 120.0) -> None:
        """Start QEMU again from the saved state and let the guest run."""
        with self._lock(uuid):
            self._resume(uuid, timeout)

    def delete(self, uuid: str, timeout: float = 5.0) -> None:
        """Kill QEMU by its pidfile PID and remove every file of the instance; idempotent."""
        with self._lock(uuid):
            paths = self.paths(uuid)
            ChildProcess(paths.pidfile, uuid).stop(timeout)
            self._gone(uuid)
            try:
                console = self._spec(uuid).console_log
            except DriverError:
                console = None
            if console is not None:
                console.unlink(missing_ok=True)
            shutil.rmtree(paths.directory, ignore_errors=True)

    def attach_volume(self, uuid: str, volume: Volume) -> None:
        """Hot-plug volume into a running QEMU (VolumeError when it cannot be), and keep it
        in the spec so that the next start has it on its command line."""
        with self._lock(uuid):
            spec = self._spec(uuid)
            if self.pid(uuid) is not None:
                self._volumes(uuid).attach(volume)
            others = [v for v in spec.volumes if v.volume_id != volume.volume_id]
            self._save_volumes(spec, [*others, volume])

    def detach_volume(self, uuid: str, volume_id: str) -> None:
        """Unplug the volume (bounded wait for the guest; VolumeError if it holds on) and
        drop it from the spec."""
        with self._lock(uuid):
            spec = self._spec(uuid)
            if self.pid(uuid) is not None:
                self._volumes(uuid).detach(node_name(volume_id)[len(NODE_PREFIX):])
            self._save_volumes(spec, [v for v in spec.volumes if v.volume_id != volume_id])

    def sync_volumes(self, uuid: str, wanted: list[Volume]) -> dict[str, str]:
        """Bring the instance's volumes to wanted: hot-plug or unplug when QEMU runs, else
        only the spec for the next start. The spec keeps what QEMU still holds."""
        with self._lock(uuid):
            spec = self._spec(uuid)
            if not wanted and not spec.volumes:
                return {}  # the common case: no QMP round trip on every converge
            if self.pid(uuid) is None and self.paths(uuid).saved_state.exists():
                return suspended_outcome(spec.volumes, wanted)
            if self.pid(uuid) is None:
                self._save_volumes(spec, wanted)
                return {v.volume_id: "attached" for v in wanted}
            known = [v.volume_id for v in spec.volumes]
            outcome = self._volumes(uuid).converge(wanted, known)
            held = [v for v in spec.volumes if v.volume_id in outcome
                    and v.volume_id not in {w.volume_id for w in wanted}]
            self._save_volumes(spec, [*(v for v in wanted
                                        if outcome[v.volume_id] == "attached"), *held])
            return outcome

    def check_exports(self, spec: InstanceSpec) -> None:
        """VolumeError unless every export spec starts with passes the check a hot-plug
        makes (volumes.checker): QEMU itself would admit a revoked storage node."""
        creds = spec.volume_creds
        probe = probe_in(self.launcher, creds) if self.launcher else checker(creds)
        for volume in spec.volumes:
            try:
                probe(volume)
            except VolumeError as err:
                raise DriverError(f"volume {volume.volume_id}: {err}") from None

    def _volumes(self, uuid: str) -> Volumes:
        creds, paths = self._spec(uuid).volume_creds, self.paths(uuid)
        return Volumes(paths.qmp, self.qmp_timeout, self.detach_timeout,
                       probe_in(self.launcher, creds) if self.launcher else None, creds,
                       psk_dir(paths), _recorded_owner(paths.directory / RUNAS_FILE))

    def _save_volumes(self, spec: InstanceSpec, volumes: list[Volume]) -> None:
        if volumes != spec.volumes:
            updated = InstanceSpec(**{**spec.__dict__, "volumes": volumes})
            write_private(self.paths(spec.uuid).spec, updated.to_json().encode())

    def state(self, uuid: str) -> State:
        """running, paused or error (QEMU alive); suspended, shutoff or missing (not)."""
        paths = self.paths(uuid)
        if self.pid(uuid) is not None:
            try:
                status = self._status(uuid)
            except QMPError:
                return "error"  # possibly only busy: the agent asks again before reporting
            state = RUN_STATES.get(status, "paused")
            if state == "error":
                log.warning("instance %s: QEMU status %s", uuid, status)
            return state
        if not paths.spec.exists():
            return "missing"
        return "suspended" if paths.saved_state.exists() else "shutoff"

    def list(self) -> dict[str, State]:
        """Every instance under instances_dir and its state, running ones re-adopted as is."""
        return {uuid: self.state(uuid) for uuid in self.uuids()}

    def uuids(self) -> list[str]:
        """Every instance under instances_dir, without asking QEMU anything."""
        if not self.instances_dir.is_dir():
            return []
        return [path.name for path in sorted(self.instances_dir.iterdir())
                if (path / "spec.json").exists()]

    def console(self, uuid: str, length: int | None = None) -> str:
        """The serial console log, its last length lines when given."""
        try:
            log = self._spec(uuid).console_log or self.paths(uuid).console_log
            with log.open("rb") as data:
                size = data.seek(0, 2)
                data.seek(max(0, size - CONSOLE_TAIL_BYTES))
                text = data.read().decode(errors="replace")
        except (OSError, DriverError):
            return ""
        if length is None:
            return text
        return "".join(text.splitlines(keepends=True)[-length:]) if length > 0 else ""

    def _resume(self, uuid: str, timeout: float) -> None:
        if self.state(uuid) != "suspended":
            raise DriverError(f"instance {uuid} is not suspended")
        spec, paths = self._spec(uuid), self.paths(uuid)
        with Reverter() as revert:
            self._launch(spec, paths, revert, timeout, incoming=True)
            with QMP(paths.qmp, self.qmp_timeout) as qmp:
                suspend.load_state(qmp, paths.saved_state, timeout)
        # Only now is the state in a running QEMU; a failure above keeps the file to retry.
        paths.saved_state.unlink()

    def _launch(self, spec: InstanceSpec, paths: InstancePaths, revert: Reverter,
                timeout: float, incoming: bool = False) -> None:
        paths.qmp.parent.mkdir(parents=True, exist_ok=True)
        paths.qmp.unlink(missing_ok=True)
        # The disk's header is the instance's to write; root opens the disk next.
        if not boots_from_volume(spec.volumes):
            disks.verify_overlay(paths.disk)
        run_as = confine(spec, paths, self.instances_dir) if self.unprivileged else None
        if run_as is not None:
            # Without a local disk nothing else records the instance's user (_gone).
            write_private(paths.directory / RUNAS_FILE, run_as.encode())
        argv = qemu_argv(spec, paths, incoming=incoming, sandbox=self.sandbox, run_as=run_as)
        limits = []
        if run_as is not None and spec.pci_devices:
            # VFIO pins all guest memory; only root may lock more than RLIMIT_MEMLOCK.
            limits = ["prlimit", f"--memlock={(spec.memory_mb + 1024) << 20}"]
        # No setuid program can give an escaped guest's QEMU (or its children) root back.
        no_new_privs = ["setpriv", "--no-new-privs"]
        # -daemonize returns once QEMU is set up, with its errors on stderr if it is not:
        # it has read the attachments' keys (as root), which are not left on disk.
        try:
            for volume in spec.volumes:
                if volume.psk_key:
                    write_psk(psk_dir(paths), volume)
            run([*self.launcher, *limits, *no_new_privs, *argv], timeout=timeout)
        finally:
            shutil.rmtree(psk_dir(paths), ignore_errors=True)
        revert.add(lambda: ChildProcess(paths.pidfile, spec.uuid).stop())
        revert.add(lambda: paths.qmp.unlink(missing_ok=True))
        if self.pid(spec.uuid) is None:
            raise HostCommandError(argv, -1, "QEMU daemonized but is not running")
        self._wait_qmp(spec.uuid, timeout)

    def _gone(self, uuid: str) -> None:
        """After QEMU has exited: no process of the instance's user is left, and neither
        its socket nor its pidfile (QEMU, no longer root, cannot remove them itself)."""
        paths = self.paths(uuid)
        owner = disk_owner(paths.disk) or _recorded_user(paths.directory / RUNAS_FILE)
        if owner is not None:
            kill_strays(owner)
        if self.pid(uuid) is None:
            paths.pidfile.unlink(missing_ok=True)
        paths.qmp.unlink(missing_ok=True)

    def _wait_qmp(self, uuid: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._status(uuid)
                return
            except QMPError:
                if time.monotonic() >= deadline or self.pid(uuid) is None:
                    raise
            time.sleep(0.05)

    def _wait_exit(self, uuid: str, timeout: float) -> bool:
        """Wait until QEMU has exited. Its pidfile (and argv) go before the process does,
        so the PID seen first is watched too: a start right after must find the disk free."""
        deadline = time.monotonic() + timeout
        pid = self.pid(uuid)
        while self.pid(uuid) is not None or (pid is not None and alive(pid)):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _status(self, uuid: str) -> str:
        with QMP(self.paths(uuid).qmp, self.qmp_timeout) as qmp:
            status: str = run_state(qmp)
        return status

    def _execute(self, uuid: str, command: str) -> None:
        with self._lock(uuid):
            if self.pid(uuid) is None:
                raise DriverError(f"instance {uuid} is not running")
            with QMP(self.paths(uuid).qmp, self.qmp_timeout) as qmp:
                qmp.execute(command)

    def _try(self, uuid: str, command: str) -> None:
        # QEMU may exit before it answers (quit) or be past answering; the wait decides.
        try:
            with QMP(self.paths(uuid).qmp, self.qmp_timeout) as qmp:
                qmp.execute(command)
        except QMPError:
            pass

    def spec(self, uuid: str) -> InstanceSpec:
        """The spec the instance was last started with (DriverError if there is none)."""
        return self._spec(uuid)

    def _spec(self, uuid: str) -> InstanceSpec:
        try:
            return InstanceSpec.from_json(self.paths(uuid).spec.read_text())
        except OSError:
            raise DriverError(f"no instance {uuid} on this node") from None

    @contextmanager
    def _lock(self, uuid: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(uuid, threading.RLock())
        with lock:
            yield


def _recorded_owner(path: Path) -> tuple[int, int] | None:
    """The "uid:gid" QEMU last ran as, if its uid is one of the instance block."""
    try:
        uid, gid = (int(part) for part in path.read_text().split(":"))
    except (OSError, ValueError):
        return None
    return (uid, gid) if guest_ids.in_block(uid) else None


def _recorded_user(path: Path) -> int | None:
    """The uid of the "uid:gid" QEMU last ran as, if it is one of the instance block."""
    try:
        uid = int(path.read_text().split(":")[0])
    except (OSError, ValueError):
        return None
    return uid if guest_ids.in_block(uid) else None
