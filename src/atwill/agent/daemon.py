"""The agent: heartbeats, the desired-state long-poll, and converging the host.

Two threads talk to the controller; both back off and retry on any network
failure, so the agent survives controller restarts and partitions. The last
desired state is cached on disk and applied at start, so a restarted agent (or
one cut off from the controller) keeps its host as it was.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import httpx

from .client import ClusterError, check, client, tls_context
from .config import AgentConfig
from .instances import InstanceManager, remove_all
from .inventory import collect, inventory_digest
from .network import NetworkManager
from .overlay.driver import OverlayDriver

log = logging.getLogger("atwill.agent")
MAX_BACKOFF = 10.0
# Converge again this often even without a new revision: it restarts what died
# (an OpenVPN client refused before the server knew it) and repairs tampering.
RECONCILE_INTERVAL = 5.0


class Removed(Exception):
    """The controller revoked this node's certificate."""


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.stopping = threading.Event()
        self.removed = threading.Event()
        self.revision = -1
        self.interval = 1.0
        self.overlay = OverlayDriver(config)
        self.instances = InstanceManager(config)
        self.network = NetworkManager(config)
        self._sent_digest: str | None = None
        self._inventory: dict[str, Any] | None = None
        self._desired: dict[str, Any] | None = None
        self._lock = threading.Lock()
        # Set when instances changed, so their new state is reported at once.
        self.beat_now = threading.Event()
        self.instances.on_started = self.beat_now.set

    # lifecycle ---------------------------------------------------------------
    def run(self) -> int:
        claim_pidfile(self.config)
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        try:
            cached = self.config.cached_desired()
            if cached:
                self.apply(cached)
            threads = [threading.Thread(target=self._loop, args=(self._beat,), daemon=True,
                                        name="heartbeat"),
                       threading.Thread(target=self._loop, args=(self._poll,), daemon=True,
                                        name="desired"),
                       threading.Thread(target=self._reconcile, daemon=True, name="reconcile")]
            for thread in threads:
                thread.start()
            log.info("agent for node %s started (pid %d)", self.config.name, os.getpid())
            while not self.stopping.wait(0.5):
                pass
            if self.removed.is_set():
                log.warning("node %s was removed by the controller; cleaning up",
                            self.config.name)
                cleanup(self.config, self.overlay)
                return 0
            log.info("agent stopping; the host stays as it is")
            return 0
        finally:
            release_pidfile(self.config)

    def _loop(self, step) -> None:
        backoff = 0.5
        context = tls_context(self.config.ca, self.config.cert, self.config.key)
        while not self.stopping.is_set():
            try:
                with client(self.config.controller_url, context, timeout=40) as http:
                    while not self.stopping.is_set():
                        step(http)
                        backoff = 0.5
            except Removed:
                self.removed.set()
                self.stopping.set()
            except (httpx.HTTPError, ClusterError, OSError) as err:
                log.warning("%s: %s; retrying in %.1fs", threading.current_thread().name,
                            err, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    # the two conversations ------------------------------------------------------
    def _call(self, http: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return check(http.request(method, path, **kwargs)).json()
        except ClusterError as err:
            if err.status == 403 and "revoked" in err.message:
                raise Removed() from None
            raise

    def _beat(self, http: httpx.Client) -> None:
        inventory = self.inventory()
        digest = inventory_digest(inventory)
        body: dict[str, Any] = {"overlay": self.overlay.status(),
                                "running_vms": self.instances.running_count(),
                                "host": host_status(), "instances": self.instances.report()}
        if digest != self._sent_digest:
            body["inventory"] = inventory
        self._call(http, "POST", f"/cluster/v1/nodes/{self.config.node_id}/heartbeat",
                   json=body)
        self._sent_digest = digest
        self.beat_now.wait(self.interval)
        self.beat_now.clear()

    def _poll(self, http: httpx.Client) -> None:
        desired = self._call(http, "GET", f"/cluster/v1/nodes/{self.config.node_id}/desired",
                             params={"after": self.revision, "wait": 25})
        if desired["revision"] != self.revision:
            self.apply(desired)
            self.config.cache_desired(desired)

    def _reconcile(self) -> None:
        while not self.stopping.wait(RECONCILE_INTERVAL):
            if self._desired is not None:
                self.apply(self._desired, quiet=True)

    def inventory(self) -> dict[str, Any]:
        if self._inventory is None:
            self._inventory = collect(self.config.instances_dir)
        return self._inventory

    def apply(self, desired: dict[str, Any], quiet: bool = False) -> None:
        """Converge the host to desired; a failure is logged and retried by the reconciler."""
        with self._lock:
            self._desired = desired
            # Taken even if applying fails: the reconciler retries, the long-poll must not spin.
            self.revision = desired["revision"]
            try:
                self.overlay.apply(desired, verify=quiet)
                wanted = desired.get("instances", [])
                self.instances.overlay_url = desired.get("controller_overlay_url")
                self.instances.taps(wanted)
                # QEMU first: a guest needs a second before it sends its first frame, and
                # the data plane plugs its tap meanwhile.
                self.instances.converge(wanted)
                self.beat_now.set()
                self.network.apply(desired)
                self.interval = float(desired.get("heartbeat_interval") or 1.0)
                if not quiet:
                    log.info("applied revision %s", desired["revision"])
            except Exception:  # noqa: BLE001 - keep the agent alive, retry on next poll
                log.exception("could not apply revision %s", desired.get("revision"))


def host_status() -> dict[str, Any]:
    """Uptime and load, for the hypervisor uptime that operators ask for."""
    try:
        uptime = float(open("/proc/uptime").read().split()[0])
        load = [float(x) for x in open("/proc/loadavg").read().split()[:3]]
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


def cleanup(config: AgentConfig, overlay: OverlayDriver | None = None) -> None:
    """Remove everything this node's agent made on the host, keeping only the log."""
    remove_all(config)
    NetworkManager(config).teardown()
    (overlay or OverlayDriver(config)).teardown()
    for path in (config.desired_cache, config.cert, config.key, config.ca,
                 config.overlay_dir / "wg-private.key", config.state_dir / "agent.yaml"):
        path.unlink(missing_ok=True)
    for directory in (config.overlay_dir, config.state_dir / "pki", config.instances_dir):
        try:
            directory.rmdir()
        except OSError:
            pass
