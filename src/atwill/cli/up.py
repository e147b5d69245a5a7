"""atwill up: the all-in-one cloud — controller, a local agent joined to it, defaults."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer

from .. import cloud_defaults, config
from ..cloud_defaults import GUEST_IMAGE
from ..config import Settings
from ..core import public_range
from . import down as down_cmd
from .controller_cmd import Workers
from .options import (
    DatabaseUrl,
    Host,
    Insecure,
    Port,
    PublicHost,
    StateDir,
    console,
    err,
)

log = logging.getLogger("atwill.up")
EXTERNAL_BRIDGE = "atwill-ext"
# After Ctrl-C, requests still running (an agent's long-poll) get this long to finish.
GRACEFUL_SECONDS = 2.0

UpOverlay = Annotated[str | None, typer.Option(
    "--overlay", help="Overlay to other hosts: none (the default for up: one host needs "
    "none), wireguard or openvpn.")]
PublicRange = Annotated[str | None, typer.Option(
    "--public-range", metavar="CIDR", help="The external network 'public' (default: "
    "public_range in atwill.yaml, else the first of 198.18.0.0/24, 198.19.254.0/24, "
    "100.64.254.0/24, … that overlaps no route, address, resolver or package mirror of "
    "this host).")]


def openstack_command() -> str:
    """How to run the real client: `openstack` if on PATH, else the one beside Python."""
    if shutil.which("openstack"):
        return "openstack"
    beside = Path(sys.executable).parent / "openstack"
    return str(beside) if beside.exists() else "openstack"


def up(state_dir: StateDir = None, database_url: DatabaseUrl = None, host: Host = None,
       port: Port = None, public_host: PublicHost = None, insecure_http: Insecure = False,
       overlay: UpOverlay = None, public_cidr: PublicRange = None,
       workers: Workers = None) -> None:
    """Initialise if needed, then run the all-in-one cloud in the foreground.

    Ctrl-C (or 'atwill down' from another shell) stops it and removes what it set up on
    this host; the state directory is kept.
    """
    from .controller_cmd import _initialise, _settings, run

    conf = _settings(state_dir, database_url, host, port, public_host, insecure_http,
                     overlay or "none", workers)
    conf.public_range = _public_range(conf, public_cidr)
    conf.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        down_cmd.claim(conf.state_dir)
    except RuntimeError as error:
        err.print(f"[red]{error}[/red] ('atwill down' stops it)", highlight=False)
        raise typer.Exit(1) from None
    companion = AllInOne(conf)
    # uvicorn raises the signal again once it has stopped serving: SIGTERM ('atwill down')
    # must then end this process as Ctrl-C does, through the cleanup below.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        _initialise(conf)
        config.save(conf, ["public_range"])
        _hints(conf)
        companion.start()
        run(conf, on_exit=companion.stop_soon, graceful=GRACEFUL_SECONDS)
    finally:
        companion.stop()
        down_cmd.release(conf.state_dir)


def _terminated(sig: int, frame: object) -> None:
    raise typer.Exit(128 + sig)


def _hints(conf: Settings) -> None:
    clouds = conf.path("clouds.yaml")
    console.print(f"clouds.yaml: {clouds}  (cloud name: atwill)", highlight=False,
                  soft_wrap=True)
    console.print(f"openrc:      {conf.path('openrc')}", highlight=False, soft_wrap=True)
    console.print(f"public:      {conf.public_range} (the external network)", highlight=False)
    console.print(f"dashboard:   {conf.public_url}/dashboard  (log in as admin)", highlight=False,
                  soft_wrap=True)
    console.print("try:", highlight=False)
    console.print(f"  export OS_CLIENT_CONFIG_FILE={clouds} OS_CLOUD=atwill", highlight=False,
                  soft_wrap=True)
    console.print(f"  {openstack_command()} server list", highlight=False, soft_wrap=True)
    console.print("stop: Ctrl-C here, or 'atwill down' from another shell", highlight=False)


def _public_range(conf: Settings, asked: str | None) -> str:
    """The public range this cloud has or gets; exits with one line if it is unusable."""
    from ..controller.network.defaults import PRIVATE_CIDR
    from .up_host import host_facts

    reserved = [(PRIVATE_CIDR, f"the private network {PRIVATE_CIDR}")]
    if conf.overlay != "none":
        reserved.append((conf.overlay_cidr, f"the overlay {conf.overlay_cidr}"))
    facts = host_facts(EXTERNAL_BRIDGE, reserved)
    existing = _existing_public(conf)
    wanted = asked or conf.public_range or None
    try:
        if existing and wanted and public_range.parse(wanted) != public_range.parse(existing):
            raise ValueError(f"the cloud in {conf.state_dir} has public {existing}, not "
                             f"{wanted}; 'atwill down --purge' starts a new cloud")
        if existing or wanted:
            return str(public_range.check(existing or wanted or "", facts))
        return str(public_range.choose(facts))
    except ValueError as error:
        err.print(f"[red]cannot start:[/red] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _existing_public(conf: Settings) -> str | None:
    """The public subnet's range of an initialised cloud (None for a new one)."""
    if not conf.path("admin-password").exists():
        return None
    from sqlalchemy import select

    from ..controller.context import Controller
    from ..controller.db.network import Network, Subnet
    from ..controller.db.session import is_initialised

    ctl = Controller.from_settings(conf)
    try:
        if not is_initialised(ctl.db.engine):
            return None
        with ctl.db.session() as session:
            return session.scalar(
                select(Subnet.cidr).join(Network, Network.id == Subnet.network_id)
                .where(Network.name == "public", Network.external.is_(True)).limit(1))
    finally:
        ctl.db.dispose()


class AllInOne:
    """Runs beside the controller: joins a local agent and uploads the guest image."""

    def __init__(self, conf: Settings) -> None:
        self.conf = conf
        self.node_dir = conf.path("node")
        self.agent: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self._lock = threading.Lock()  # no agent starts once stopping is set
        self._stopper: threading.Thread | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="all-in-one", daemon=True).start()

    def stop_soon(self) -> None:
        """On Ctrl-C: stop at once, beside the controller's own shutdown, so the agent's
        long-poll ends and the controller is not kept waiting for it."""
        with self._lock:
            if self._stopper is None:
                self._stopper = threading.Thread(target=self._stop, name="all-in-one-stop")
                self._stopper.start()

    def stop(self) -> None:
        """Stop the agent, the VMs and the node's networking; returns when all is gone."""
        self.stop_soon()
        assert self._stopper is not None
        self._stopper.join()

    def _stop(self) -> None:
        with self._lock:
            self.stopping.set()
        if self.agent and self.agent.poll() is None:
            os.killpg(self.agent.pid, signal.SIGTERM)
            try:
                self.agent.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.agent.pid, signal.SIGKILL)
                self.agent.wait()
        try:
            kept = down_cmd.clean_node(self.node_dir)
        except Exception:  # noqa: BLE001 - say it; 'atwill down' can finish the job
            log.exception("could not remove everything; 'atwill down' retries")
            return
        log.info("stopped: the local node's VMs (%d disk(s) kept) and networking are "
                 "removed", len(kept))

    def _run(self) -> None:
        try:
            self._wait_ready()
            self._start_agent()
            token = self._admin_token()
            self._flavors(token)
            self._guest_image(token)
            log.info("all-in-one cloud ready: try '%s server create --flavor m1.small "
                     "--image %s --network private --wait demo'", openstack_command(),
                     GUEST_IMAGE)
        except Exception:  # noqa: BLE001 - the controller keeps serving; say what failed
            if not self.stopping.is_set():
                log.exception("all-in-one setup failed")

    def _client(self, token: str | None = None) -> httpx.Client:
        return cloud_defaults.client(self.conf, token)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.stopping.is_set():
            try:
                with self._client() as client:
                    client.get("/identity/v3")
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("the controller did not start" if not self.stopping.is_set()
                           else "stopping")

    def _start_agent(self) -> None:
        env = dict(os.environ, ATWILL_NODE_NAME=socket.gethostname().split(".")[0])
        if not env.get("ATWILL_EXTERNAL_BRIDGE"):
            # The external network `public` lives on a bridge atwill creates, holding the
            # public subnet's gateway; tenants leave by the host's own routes, masqueraded
            # (agent/net/uplink.py), so the host's interfaces stay as they are.
            env.update(ATWILL_EXTERNAL_BRIDGE=EXTERNAL_BRIDGE, ATWILL_EXTERNAL_NAT="1")
        # The all-in-one node keeps the cloud's volumes too (a storage node).
        volumes = self.node_dir / "volumes"
        if (self.node_dir / "agent.yaml").exists():
            from ..agent.storage.node import make_storage_node

            make_storage_node(self.node_dir, volumes)
        else:
            env.update(ATWILL_JOIN_STORAGE=str(volumes))
            from ..controller.cluster import tokens
            from ..controller.cluster.join_command import join_details
            from ..controller.context import Controller

            ctl = Controller.from_settings(self.conf)
            try:
                with ctl.db.session() as session:
                    secret, _ = tokens.create(session, 600, 1, "atwill up: the local node")
            finally:
                ctl.db.dispose()
            details = join_details(self.conf, secret)
            env.update(ATWILL_JOIN_URL=details["url"], ATWILL_JOIN_TOKEN=secret,
                       ATWILL_JOIN_CA_HASH=details["ca_hash"])
        self.node_dir.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.node_dir / "agent.log", "ab") as out:
            if self.stopping.is_set():
                raise RuntimeError("stopping: the local agent is not started")
            self.agent = subprocess.Popen(
                [sys.executable, "-m", "atwill.cli.main", "agent", "--state-dir",
                 str(self.node_dir)], stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)
        log.info("local agent started (pid %d, log %s)", self.agent.pid,
                 self.node_dir / "agent.log")

    def _admin_token(self) -> str:
        return cloud_defaults.admin_token(self.conf)

    def _flavors(self, token: str) -> None:
        cloud_defaults.flavors(self.conf, token)

    def _guest_image(self, token: str) -> None:
        cloud_defaults.guest_image(self.conf, token)
