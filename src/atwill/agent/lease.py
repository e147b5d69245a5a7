"""The agent's side of self-fencing: the lease, and killing protected VMs when it runs out.

The lease is counted from the send time (monotonic clock) of the last heartbeat
the controller answered 200: the controller heard it no earlier, so its own
count (lease + margin from the heartbeat's arrival) ends after ours. When the
lease ran out and fewer than half of the probed peers answer (core/peer_view),
every HA-protected QEMU is killed (SIGKILL by the driver's PID, disks kept),
and none is started again until the controller answers a heartbeat and a
desired state asked for after it says what is still this node's to run.

The renewal time is kept in STATE_DIR/lease.json with the kernel's boot id, so a
restarted agent keeps counting the same lease rather than granting itself a new
one. Where /dev/watchdog exists and ATWILL_WATCHDOG=1, it is armed with the
lease as timeout and fed by the lease loop: an agent that hangs (and so neither
renews nor kills) has its host rebooted. That last part is not tested here (no
watchdog device in the test hosts).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..core import peer_view
from .peers import PeerProber

log = logging.getLogger("atwill.agent.lease")
CHECK_INTERVAL = 0.25
WDIOC_SETTIMEOUT = 0xC0045706
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class Lease:
    def __init__(self, state_dir: Path, prober: PeerProber, pid_of: Any) -> None:
        self.path = state_dir / "lease.json"
        self.prober, self.pid_of = prober, pid_of
        self._lock = threading.Lock()
        self.lease = 0.0
        self.protected: frozenset[str] = frozenset()
        self.renewed_at = self._load()
        self.fenced = False
        self.unfenced_at = 0.0
        self._watchdog: int | None = None
        self._watchdog_tried = False

    def configure(self, block: dict[str, Any] | None) -> None:
        """Take lease and protected instances from the desired state's "ha" block."""
        with self._lock:
            self.lease = float((block or {}).get("lease") or 0.0)
            self.protected = frozenset((block or {}).get("protected", ()))

    def renewed(self, sent: float) -> None:
        """A heartbeat sent at `sent` (monotonic) was answered 200."""
        with self._lock:
            if self.renewed_at is not None and sent <= self.renewed_at:
                return
            self.renewed_at = sent
        self._save(sent)

    def unfence(self) -> None:
        """The controller answered again and said what is ours to run: start as it says."""
        with self._lock:
            if self.fenced:
                log.warning("lease renewed: HA instances may run again as the controller says")
            self.fenced, self.unfenced_at = False, time.monotonic()

    def allowed(self, instances: list[dict[str, Any]],
                asked: float | None = None) -> list[dict[str, Any]] | None:
        """Of the desired instances, those this node may run now (no protected one while
        fenced); None for a desired state asked for before the last unfence (stale)."""
        with self._lock:
            if self.fenced:
                return [i for i in instances if i.get("id") not in self.protected]
            if asked is not None and asked < self.unfenced_at:
                return None
            return instances

    def check(self, now: float) -> list[str]:
        """Fence when the rule says so; kill every protected QEMU while fenced."""
        with self._lock:
            lease, renewed, protected = self.lease, self.renewed_at, self.protected
        ages = self.prober.answer_ages(now)
        if not self.fenced and peer_view.must_fence_self(now, renewed, lease, ages):
            with self._lock:
                self.fenced = True
            heard = peer_view.heard_count(ages.values())
            log.error("SELF-FENCING: lease of %.1f s not renewed for %.1f s and only %d of %d "
                      "peers answer: killing %d HA instance(s), disks kept", lease,
                      now - renewed if renewed is not None else float("inf"), heard,
                      len(ages), len(protected))
        return self._kill(protected) if self.fenced else []

    def _kill(self, protected: frozenset[str]) -> list[str]:
        killed = []
        for uuid in sorted(protected):
            pid = self.pid_of(uuid)
            if pid is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(uuid)
                log.error("self-fencing: QEMU of instance %s (pid %d) killed", uuid, pid)
        return killed

    def run(self, stopping: threading.Event) -> None:
        """Check the lease (and feed the watchdog) every CHECK_INTERVAL until stopping."""
        while not stopping.wait(CHECK_INTERVAL):
            try:
                self.check(time.monotonic())
            except Exception:  # noqa: BLE001 - the check must go on
                log.exception("lease check failed")
            self._feed()
        self._disarm()

    # persistence and watchdog ---------------------------------------------------------
    def _load(self) -> float | None:
        try:
            data = json.loads(self.path.read_text())
            if data.get("boot_id") == _boot_id():
                # A restart notice (hand_over) holds the lease to its deadline; counted
                # from now at the latest, so the next renewal is seen as one.
                held = max(float(data["renewed_at"]), float(data.get("notice_until") or 0))
                return min(held, time.monotonic())
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    def _save(self, sent: float, notice_until: float | None = None) -> None:
        tmp = self.path.with_suffix(".tmp")
        data = {"boot_id": _boot_id(), "renewed_at": sent}
        if notice_until is not None:
            data["notice_until"] = notice_until
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(data))
            tmp.replace(self.path)

    def _feed(self) -> None:
        if not self._watchdog_tried and self.lease > 0 and watchdog_allowed():
            self._watchdog_tried = True
            try:
                self._watchdog = os.open("/dev/watchdog", os.O_WRONLY)
                fcntl.ioctl(self._watchdog, WDIOC_SETTIMEOUT,
                            struct.pack("I", max(int(self.lease), 1)))
                log.warning("hardware watchdog armed (%d s)", max(int(self.lease), 1))
            except OSError as err:
                log.warning("hardware watchdog not armed: %s", err)
        if self._watchdog is not None:
            with contextlib.suppress(OSError):
                os.write(self._watchdog, b"\0")

    def _disarm(self) -> None:
        if self._watchdog is not None:
            with contextlib.suppress(OSError):
                os.write(self._watchdog, b"V")  # the magic close: a clean stop
                os.close(self._watchdog)
            self._watchdog = None


    def hand_over(self, notice_until: float | None = None) -> None:
        """The agent stops (an upgrade, a restart) while its VMs run on: a small keeper
        process kills the protected ones when the lease runs out, unless a new agent
        renewed it meanwhile. Without it, a stopped agent's node looks dead (its peers
        stop hearing it) and would be evacuated while its VMs still run.

        notice_until: the deadline (monotonic) of the restart notice the controller
        accepted; it counts the lease from there, so the keeper and the next agent do."""
        with self._lock:
            lease, renewed = self.lease, self.renewed_at
            pids = [(uuid, self.pid_of(uuid)) for uuid in sorted(self.protected)]
        if notice_until is not None:
            self._save(renewed if renewed is not None else 0.0, notice_until)
        pids = [(uuid, pid) for uuid, pid in pids if pid is not None]
        if lease <= 0 or not pids:
            return
        held = renewed if renewed is not None else time.monotonic()
        deadline = max(held, notice_until or 0.0) + lease
        args = [sys.executable, "-m", "atwill.agent.lease", str(self.path), str(deadline),
                str(renewed or 0.0), *(f"{uuid}={pid}" for uuid, pid in pids)]
        os.posix_spawn(sys.executable, args, os.environ, setsid=True)
        log.warning("lease keeper started: %d HA instance(s) are killed at the lease's end "
                    "unless a new agent renews it", len(pids))


def keep(path: Path, deadline: float, renewed: float, pids: dict[str, int]) -> int:
    """The keeper: wait for the lease's end; kill the QEMUs unless it was renewed. It
    ends early when a new agent renewed the lease or none of the QEMUs runs any more
    (stopped or deleted meanwhile, as by `atwill down`): nothing is left to kill."""
    while time.monotonic() < deadline:
        time.sleep(CHECK_INTERVAL)
        try:
            if float(json.loads(path.read_text())["renewed_at"]) > renewed:
                return 0  # a new agent holds the lease
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if not any(_runs(uuid, pid) for uuid, pid in pids.items()):
            return 0
    for uuid, pid in pids.items():
        if _runs(uuid, pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return 0


def _runs(uuid: str, pid: int) -> bool:
    """Whether pid is still that instance's QEMU (not gone, not a reused PID)."""
    try:
        return uuid.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def watchdog_allowed() -> bool:
    return os.environ.get("ATWILL_WATCHDOG") == "1" and os.path.exists("/dev/watchdog")


def _boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(keep(Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]),
                  {k: int(v) for k, v in (a.split("=", 1) for a in sys.argv[4:])}))
