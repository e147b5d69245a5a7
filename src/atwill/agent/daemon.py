"""The agent: heartbeats, the desired-state long-poll, and converging the host.

Two threads talk to the controller; both back off and retry on any network
failure, so the agent survives controller restarts and partitions. The last
desired state is cached on disk and applied at start, so a restarted agent (or
one cut off from the controller) keeps its host as it was.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from atwill.agent.overlay_driver import OverlayDriver

from ..core import beat_order, peer_view
from ..core import restart_notice as core_notice
from ..core.host_figures import REPORT_KEY as HOST_FIGURES_KEY
from ..core.reconcile_timing import REPORT_KEY as RECONCILE_KEY
from ..core.reconcile_timing import ReconcileTimes
from . import renewal, restart_notice
from .beat_sequence import FILE as BEAT_EPOCH_FILE
from .beat_sequence import BeatSequence
from .client import (
    CERTIFICATE_SUPERSEDED,
    ClusterError,
    beat_options,
    check,
    client,
    note_reply,
    tls_context,
)
from .cold_migrations import ColdMigrations
from .config import AgentConfig, write_private
from .host_metrics import HostMetrics, overlay_interface
from .instances import InstanceManager, kept_instances, remove_all
from .inventory import collect, inventory_digest
from .lease import Lease
from .network import NetworkManager
from .peers import PeerProber
from .storage.node import storage_manager
from .storage.reconcile import export_host

log = logging.getLogger("atwill.agent")
MAX_BACKOFF = 10.0
# Converge again this often even without a new revision: it restarts what died
# (an OpenVPN client refused before the server knew it) and repairs tampering.
RECONCILE_INTERVAL = 5.0
CONSOLE_INTERVAL = 2.0
# At most this long the data plane waits for the QEMUs a pass starts (their images are
# cached: a fetch is not waited for).
LAUNCH_WAIT = 2.0


class Removed(Exception):
    """The controller said (error type node_removed) that this node was removed."""


class Reconnect(Exception):
    """The node's certificate changed: reconnect with the new one at once."""


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.stopping = threading.Event()
        self.removed = threading.Event()
        # This process's run, named in its heartbeats and its restart notice (a late
        # heartbeat of this run must not end the notice: core/restart_notice).
        self.run_id = secrets.token_hex(8)
        self.revision = -1
        self.interval = 1.0
        self.overlay = OverlayDriver(config)
        self.instances = InstanceManager(config)
        self.network = NetworkManager(config)
        # Disks this node sends or receives in a cold migration or resize.
        self.cold = ColdMigrations(self.instances.driver, config.node_id,
                                   self.instances._controller)
        # Set on a storage node: its volumes are converged and reported too.
        self.storage = storage_manager(
            config, lambda: self.instances.overlay_url or config.controller_url)
        self._sent_digest: str | None = None
        self._inventory: dict[str, Any] | None = None
        self._desired: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._cert_lock = threading.Lock()
        # Held while a heartbeat is sent: the restart notice waits for it (restart_notice.py).
        self._beat_lock = threading.Lock()
        # Set when instances changed, so their new state is reported at once.
        self.beat_now = threading.Event()
        self._urgent = False  # this beat was asked for at once (beat_now), not timed
        self._beat_answered: float | None = None  # when the last heartbeat was answered
        self._fenced_answer = False  # the last heartbeat was answered heartbeat_fenced
        self._overlay_seen: tuple[float, dict[str, Any]] | None = None
        self.instances.on_started = self.beat_now.set
        if self.storage is not None:
            self.storage.lanes.on_done = self.beat_now.set  # a volume made: reported at once
        # Self-fencing (agent/lease.py): peer probes, and the lease renewed by heartbeats.
        self.prober = PeerProber(config.node_id)
        self.lease = Lease(config.state_dir, self.prober, self.instances.driver.pid)
        # Each heartbeat's (epoch, seq): a late copy of an older one changes nothing, so a
        # hung controller may be given up within the HA window (core/beat_order).
        self.beats = BeatSequence(config.state_dir)
        # Every pass of apply(), timed for the operator (core/reconcile_timing.py).
        self.reconciles = ReconcileTimes()
        # The host's own usage for /metrics (agent/host_metrics.py).
        self.host_metrics = HostMetrics(config.instances_dir, overlay_interface(self.overlay))

    # lifecycle ---------------------------------------------------------------
    def run(self) -> int:
        # Everything the agent writes is root's alone unless it says otherwise: files
        # shared with the node's helpers are given their modes where they are made.
        os.umask(0o077)
        claim_pidfile(self.config)
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        try:
            if self.config.removed_marker.exists():
                log.error("node %s was removed from its cloud; its VMs are stopped and their "
                          "disks kept. Not starting. Run 'atwill leave' (keeps the disks) or "
                          "'atwill leave --purge' on this host. %s", self.config.name,
                          self.config.removed_marker.read_text().strip())
                return 1
            cached = self.config.cached_desired()
            if cached:
                # Until the controller answers, only VMs that survived keep running: one
                # that stopped with its host may have been evacuated and run elsewhere.
                if self.storage is not None and "storage" in cached:
                    # Nor is an export served again that may have been revoked meanwhile.
                    cached = {**cached, "storage": self.storage.still_exported(
                        cached["storage"])}
                self.apply({**cached, "instances": self.instances.still_running(
                    cached.get("instances", []))})
            threads = [threading.Thread(target=self._loop, args=(self._beat,), daemon=True,
                                        name="heartbeat"),
                       threading.Thread(target=self._loop, args=(self._poll,), daemon=True,
                                        name="desired"),
                       threading.Thread(target=self._loop, args=(self._consoles,), daemon=True,
                                        name="console"),
                       threading.Thread(target=self._reconcile, daemon=True, name="reconcile"),
                       threading.Thread(target=self.prober.run, args=(self.stopping,),
                                        daemon=True, name="peers"),
                       threading.Thread(target=self.lease.run, args=(self.stopping,),
                                        daemon=True, name="lease")]
            for thread in threads:
                thread.start()
            log.info("agent for node %s started (pid %d)", self.config.name, os.getpid())
            while not self.stopping.wait(0.5):
                pass
            if self.removed.is_set():
                with self._lock:  # no apply may start a VM again from here on
                    if self.storage is not None:
                        self.storage.revoke_all()  # its volumes stay on disk
                    removed(self.config, self.instances, self.overlay)
                return 0
            log.info("agent stopping; the host stays as it is")
            self.lease.hand_over(self._restart_notice())
            return 0
        finally:
            release_pidfile(self.config)

    def _restart_notice(self) -> float | None:
        """Tell the controller that this agent restarts, once no heartbeat is in flight
        (one that landed after the notice would end it): the notice's deadline, or None."""
        if not self._beat_lock.acquire(timeout=restart_notice.TIMEOUT):
            log.warning("a heartbeat is still in flight: no restart notice is given")
            return None
        try:
            return restart_notice.give(self.config, restart_notice.configured(self.config),
                                       self.run_id)
        finally:
            self._beat_lock.release()

    def _loop(self, step) -> None:
        backoff = 0.5
        failing: str | None = None  # the failure being retried, logged once
        cut = 0.0  # when the failure being retried first happened
        name = threading.current_thread().name
        while not self.stopping.is_set():
            try:
                # Made at each connection: the certificate is renewed while the agent runs.
                context = tls_context(self.config.ca, self.config.cert, self.config.key)
                urls = list(self.config.controller_urls)
                with client(urls, context, timeout=40) as http:
                    # A list naming a controller URL this one lacks (learned from a
                    # desired state): the next connection is made with it, from its first
                    # (the overlay's, with several controllers on one:
                    # core/overlay_peers.failover_list). Another order (each controller
                    # lists its configured URLs first) or fewer URLs: kept as it is.
                    while not self.stopping.is_set() and \
                            set(self.config.controller_urls) <= set(urls):
                        step(http)
                        if failing is not None:
                            # For a heartbeat: what failing over added to the silence.
                            log.info("%s: the controller answers again (%.2fs after the "
                                     "first failure)", name, time.monotonic() - cut)
                            failing = None
                        backoff = 0.5
            except Removed:
                self.removed.set()
                self.stopping.set()
            except Reconnect:
                continue
            except (httpx.HTTPError, ClusterError, OSError) as err:
                # A controller down for an hour is one warning, not one a beat: the same
                # failure again is DEBUG, a new one (or the recovery) is said once.
                level = logging.DEBUG if str(err) == failing else logging.WARNING
                # A connection that broke after answering, with other controllers to go
                # to: asked again at once (a heartbeat cut by a dying controller must not
                # wait its backoff too: the HA monitor counts the silence), then backoff.
                wait = 0.0 if failing is None and isinstance(err, httpx.TransportError) \
                    and len(self.config.controller_urls) > 1 else backoff
                # A controller that did not answer in time is slow (or hung), not gone:
                # a heartbeat it may still have committed is sent again at the normal
                # interval, never after a backoff doubled up to MAX_BACKOFF (beats that
                # far apart would pass the monitor's down threshold of a live node).
                slow = isinstance(err, httpx.ReadTimeout)
                if slow:
                    wait = self.interval
                log.log(level, "%s: %s; retrying in %.1fs", name, err, wait)
                if failing is None:
                    cut = time.monotonic()
                failing = str(err)
                self.stopping.wait(wait)
                if wait and not slow:
                    backoff = min(backoff * 2, MAX_BACKOFF)

    # the two conversations ------------------------------------------------------
    def _call(self, http: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return check(http.request(method, path, **kwargs)).json()
        except ClusterError as err:
            if err.removed:
                log.warning("the controller says node %s was removed: %s", self.config.name,
                            err.message)
                raise Removed() from None
            if err.status == 403 and err.kind == CERTIFICATE_SUPERSEDED:
                # A renewal whose answer was lost, or another thread's: renew again.
                self._renew(http)
            raise

    def _renew(self, http: httpx.Client) -> None:
        with self._cert_lock:
            renewal.renew(http, self.config)
            self.overlay.credentials_changed()
        raise Reconnect()

    def _beat(self, http: httpx.Client) -> None:
        if renewal.due(self.config.cert.read_bytes()):
            self._renew(http)
        inventory = self.inventory()
        digest = inventory_digest(inventory)
        report = self.instances.report()
        body: dict[str, Any] = {"overlay": self._overlay_report(),
                                "running_vms": self.instances.running_count(report),
                                "host": {**host_status(),
                                         RECONCILE_KEY: self.reconciles.report(),
                                         HOST_FIGURES_KEY: self.host_metrics.sample(),
                                         core_notice.RUN_KEY: self.run_id},
                                "instances": report}
        if self.storage is not None:
            body["volumes"] = self.storage.report()
        if digest != self._sent_digest:
            body["inventory"] = inventory
        # The lease counts from here, the first attempt's send time: a copy sent on to
        # the next controller (client.ORDERED) left later, so the controller's count
        # from the applied one's arrival ends after ours; a 409 stale renews nothing.
        sent = time.monotonic()
        ha = (self._desired or {}).get("ha")
        if ha is not None:  # a controller that reads peers (an older one refuses the key)
            body["peers"] = self.prober.report(sent)
            body["host"] = {**body["host"], "ha_lease": self.lease.lease,
                            peer_view.NEVER_HEARD_KEY: self.prober.never_heard()}
        urls = self.config.controller_urls
        with self._beat_lock:
            if self.stopping.is_set():
                return  # a beat landing after the restart notice would end it
            try:
                reply = self._call(http, "POST",
                                   f"/cluster/v1/nodes/{self.config.node_id}/heartbeat",
                                   json=body, headers={beat_order.HEADER: self.beats.header()},
                                   **beat_options(urls, self.beats.header))
            except ClusterError as err:
                if err.status == 409 and err.kind == beat_order.FENCED:
                    # Our node is held fenced off (power confirmed off) while we run: a
                    # wrong fence. A new epoch returns it (core/beat_order); at once,
                    # unless the last answer said so too (then at the interval).
                    self.beats.fenced(err.held)
                    again, self._fenced_answer = self._fenced_answer, True
                    if again:
                        self._urgent = self.beat_now.wait(self.interval)
                        self.beat_now.clear()
                    return
                self._fenced_answer = False
                if err.status == 503 and err.kind == beat_order.BUSY:
                    # Every controller found the node's row locked (one hung in its
                    # transaction, ended within agents.IDLE_TIMEOUT_MS): nothing applied.
                    # Beat again at the interval, never after a backoff (beats that far
                    # apart would pass the HA monitor's down floor of a live node).
                    log.warning("heartbeat %s: %s; again in %.1fs", self.beats.current(),
                                err.message, self.interval)
                    self._urgent = self.beat_now.wait(self.interval)
                    self.beat_now.clear()
                    return
                if err.status != 409 or err.kind != beat_order.STALE:
                    raise
                # A newer beat of ours was applied (a copy answered twice), or one of a
                # later run (our epoch went back: a new one is taken). Nothing changed:
                # no lease renewal from it; the next beat goes at the interval.
                if self.beats.stale(err.held):
                    return  # sent again at once, in the new epoch
                log.info("heartbeat %s answered stale: %s", self.beats.current(), err.message)
                self._urgent = self.beat_now.wait(self.interval)
                self.beat_now.clear()
                return
        self._fenced_answer = False
        note_reply(urls, reply)
        self._sent_digest = digest
        answered, self._beat_answered = self._beat_answered, time.monotonic()
        if answered is not None and self._beat_answered - answered > 1.5 * self.interval:
            # The silence the controllers saw (a failover, a slow controller): said.
            log.info("heartbeat answered %.2fs after the previous one",
                     self._beat_answered - answered)
        self.lease.renewed(sent)
        if self.lease.fenced:
            self._after_self_fencing(http)
        self._urgent = self.beat_now.wait(self.interval)
        self.beat_now.clear()

    def _overlay_report(self) -> dict[str, Any]:
        """The overlay's status; a beat sent at once for a change (a VM started) reuses one
        read less than an interval ago: its `ip link` and `wg show` were on the way to
        ACTIVE, and the next timed beat reads it again."""
        now, seen = time.monotonic(), self._overlay_seen
        if not self._urgent or seen is None or now - seen[0] >= self.interval:
            seen = self._overlay_seen = (now, self.overlay.status())
        return seen[1]

    def _after_self_fencing(self, http: httpx.Client) -> None:
        """Back in touch after killing HA VMs: run what a desired state asked for now says
        (evacuated ones are in its destroy list), never what a cached or older one said."""
        desired = self._call(http, "GET", f"/cluster/v1/nodes/{self.config.node_id}/desired",
                             params={"after": -1, "wait": 0})
        self.lease.unfence()
        self.apply(desired)
        self.config.cache_desired(desired)

    def _consoles(self, http: httpx.Client) -> None:
        """Console tails, apart from heartbeats: a flooding guest cannot delay them."""
        for uuid, tail in self.instances.console_changes().items():
            try:
                self._call_raw(http, "PUT", f"/cluster/v1/nodes/{self.config.node_id}/"
                               f"instances/{uuid}/console", json={"console": tail})
            except ClusterError as err:
                if err.status != 404:  # 404: no longer this node's; nothing to send
                    raise
            self.instances.console_sent(uuid, tail)
        self.stopping.wait(CONSOLE_INTERVAL)

    def _call_raw(self, http: httpx.Client, method: str, path: str, **kwargs: Any) -> None:
        try:
            check(http.request(method, path, **kwargs))
        except ClusterError as err:
            if err.removed:
                raise Removed() from None
            raise

    def _poll(self, http: httpx.Client) -> None:
        asked = time.monotonic()
        desired = self._call(http, "GET", f"/cluster/v1/nodes/{self.config.node_id}/desired",
                             params={"after": self.revision, "wait": 25})
        if desired["revision"] != self.revision and self.apply(desired, asked=asked):
            self.config.cache_desired(desired)

    def _reconcile(self) -> None:
        while not self.stopping.wait(RECONCILE_INTERVAL):
            if self._desired is not None:
                self.apply(self._desired, quiet=True)

    def inventory(self) -> dict[str, Any]:
        if self._inventory is None:
            self._inventory = collect(self.config.instances_dir)
        if self.storage is not None:
            # Free space changes as volumes are made: sent whenever a GiB of it changes.
            return {**self._inventory, "storage": self.storage.inventory()}
        return self._inventory

    def apply(self, desired: dict[str, Any], quiet: bool = False,
              asked: float | None = None) -> bool:
        """Converge the host to desired; a failure is logged and retried by the reconciler.
        False when desired, asked for at `asked`, predates the end of a self-fencing."""
        with self._lock:
            wanted = self.lease.allowed(desired.get("instances", []), asked)
            if wanted is None:
                return False
            self._desired = desired
            # Taken even if applying fails: the reconciler retries, the long-poll must not spin.
            self.revision = desired["revision"]
            started, failed = time.monotonic(), True
            try:
                self.overlay.apply(desired, verify=quiet)
                self.prober.configure(desired.get("ha"))
                self.lease.configure(desired.get("ha"))
                self.instances.overlay_url = desired.get("controller_overlay_url")
                self.instances.set_volume_crl(desired.get("volume_crl"))
                self.instances.taps(wanted)
                # QEMU first: a guest needs a second before it sends its first frame, and
                # the data plane plugs its tap meanwhile.
                self.instances.converge(wanted, desired.get("destroy", ()))
                self.cold.converge(desired.get("cold_migrations"), desired.get("destroy", ()))
                # The data plane (a tenth of a second of `nft` and `ip` for a new port)
                # once the new QEMUs run: on two cores, in parallel, it slowed their start
                # by half. Their taps exist already, unplugged for that while.
                self.instances.wait_launches(LAUNCH_WAIT)
                self.network.apply(desired)
                failed = not self._storage(desired)
                self.interval = float(desired.get("heartbeat_interval") or 1.0)
                if not quiet:
                    log.info("applied revision %s", desired["revision"])
            except Exception:  # noqa: BLE001 - keep the agent alive, retry on next poll
                log.exception("could not apply revision %s", desired.get("revision"))
            # What the pass changed is reported at once, once it is done: a beat sent in
            # its middle found the instances it starts half made (each lane reports its own
            # end: on_started) and took the cores from their QEMUs' starts.
            self.beat_now.set()
            self.reconciles.observe(time.monotonic() - started, failed)
            return True


    def _storage(self, desired: dict[str, Any]) -> bool:
        # No "storage" key: a controller that does not manage volumes here, so nothing
        # is deleted; a failure is the storage's own, instances converge all the same.
        if self.storage is None or "storage" not in desired:
            return True
        try:
            self.storage.converge(desired["storage"] or {}, export_host(desired))
        except Exception:  # noqa: BLE001 - retried by the reconciler
            log.exception("could not converge the storage of revision %s",
                          desired.get("revision"))
            return False
        return True


def host_status() -> dict[str, Any]:
    """Uptime and load, for the hypervisor uptime that operators ask for."""
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])  # closed (no warning)
        load = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return {}
    return {"uptime_s": uptime, "loadavg": load, "time": time.strftime("%H:%M:%S")}


def claim_pidfile(config: AgentConfig) -> None:
    """One agent per state directory: refuse to start beside a live one."""
    pid = running_pid(config)
    if pid is not None and pid != os.getpid():
        raise RuntimeError(f"an agent (pid {pid}) already runs for {config.state_dir}")
    config.pidfile.write_text(f"{os.getpid()}\n")


def release_pidfile(config: AgentConfig) -> None:
    if running_pid(config) == os.getpid():
        config.pidfile.unlink(missing_ok=True)


def running_pid(config: AgentConfig) -> int | None:
    try:
        pid = int(config.pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        return pid


def stop_running(config: AgentConfig, timeout: float = 15.0) -> None:
    """Stop the agent of this state directory by the PID it recorded."""
    pid = running_pid(config)
    if pid is None or pid == os.getpid():
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running_pid(config) == pid:
        time.sleep(0.1)


def removed(config: AgentConfig, instances: InstanceManager, overlay: OverlayDriver) -> None:
    """Told the node was removed: stop every VM, keep disks and state, say so, stay stopped.

    A partition must never destroy guests: the controller may have removed a node that
    was only cut off. Only the operator deletes what is kept ('atwill leave --purge').
    """
    stopped = instances.stop_all()
    if not stopped and not kept_instances(config):
        # Nothing to keep: leave as 'atwill leave' would, so the host can simply join again.
        cleanup(config, overlay)
        log.warning("node %s was removed from its cloud; it held no instances, so what its "
                    "agent made on this host was removed too", config.name)
        return
    try:
        overlay.teardown()  # its credentials are revoked; the name's address is reused
    except Exception:  # noqa: BLE001 - the VMs are what matters here
        log.exception("could not tear the overlay down")
    note = {"removed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "stopped_instances": stopped, "instances_dir": str(config.instances_dir)}
    write_private(config.removed_marker, (json.dumps(note) + "\n").encode())
    log.warning("node %s was removed from its cloud: %d VM(s) stopped, their disks kept in "
                "%s; run 'atwill leave' (keeps them) or 'atwill leave --purge' (deletes "
                "them)", config.name, len(stopped), config.instances_dir)


def cleanup(config: AgentConfig, overlay: OverlayDriver | None = None,
            purge: bool = False) -> list[str]:
    """Remove what this node's agent made on the host, but kept disks unless purge.

    Returns the instances whose disks (and the image cache they need) were kept.
    """
    kept = remove_all(config, purge=purge)
    NetworkManager(config).teardown()
    (overlay or OverlayDriver(config)).teardown()
    for path in (config.desired_cache, config.cert, config.key, config.ca,
                 config.overlay_dir / "wg-private.key", config.state_dir / "agent.yaml",
                 config.state_dir / "lease.json", config.state_dir / BEAT_EPOCH_FILE,
                 config.removed_marker):
        path.unlink(missing_ok=True)
    for directory in (config.overlay_dir, config.state_dir / "pki", config.instances_dir):
        try:
            directory.rmdir()
        except OSError:
            pass
    return kept
