"""atwill up: the all-in-one cloud — controller, a local agent joined to it, defaults."""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import httpx

from ..config import Settings
from ..controller.cluster import tokens
from ..controller.cluster.join_command import join_details
from ..controller.context import Controller

log = logging.getLogger("atwill.up")
GUEST_IMAGE = "atwill-guest"
EXTERNAL_BRIDGE = "atwill-ext"
# The seed's smaller flavors, so the first server can boot at once (TCG is slow: tiny RAM).
FLAVORS = (("m1.tiny", 256, 1, 1), ("m1.small", 512, 5, 1), ("m1.medium", 1024, 10, 2),
           ("m1.large", 2048, 20, 2))


class AllInOne:
    """Runs beside the controller: joins a local agent and uploads the guest image."""

    def __init__(self, conf: Settings) -> None:
        self.conf = conf
        self.node_dir = conf.path("node")
        self.agent: subprocess.Popen | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="all-in-one", daemon=True).start()

    def stop(self) -> None:
        if self.agent and self.agent.poll() is None:
            os.killpg(self.agent.pid, signal.SIGTERM)
            try:
                self.agent.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.agent.pid, signal.SIGKILL)

    def _run(self) -> None:
        try:
            self._wait_ready()
            self._start_agent()
            token = self._admin_token()
            self._flavors(token)
            self._guest_image(token)
            log.info("all-in-one cloud ready: try 'openstack server create --flavor m1.small "
                     "--image %s --network private --wait demo'", GUEST_IMAGE)
        except Exception:  # noqa: BLE001 - the controller keeps serving; say what failed
            log.exception("all-in-one setup failed")

    def _client(self, token: str | None = None) -> httpx.Client:
        verify = ssl.create_default_context(cafile=str(self.conf.path("pki", "ca.pem"))) \
            if self.conf.tls else False
        headers = {"X-Auth-Token": token} if token else {}
        return httpx.Client(base_url=self.conf.public_url, verify=verify, headers=headers,
                            timeout=120)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with self._client() as client:
                    client.get("/identity/v3")
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("the controller did not start")

    def _start_agent(self) -> None:
        env = dict(os.environ, ATWILL_NODE_NAME=socket.gethostname().split(".")[0])
        if not env.get("ATWILL_EXTERNAL_BRIDGE"):
            # The external network `public` lives on a bridge atwill creates, holding the
            # public subnet's gateway; tenants leave by the host's own routes, masqueraded
            # (agent/net/uplink.py), so the host's interfaces stay as they are.
            env.update(ATWILL_EXTERNAL_BRIDGE=EXTERNAL_BRIDGE, ATWILL_EXTERNAL_NAT="1")
        if not (self.node_dir / "agent.yaml").exists():
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
        with open(self.node_dir / "agent.log", "ab") as out:
            self.agent = subprocess.Popen(
                [sys.executable, "-m", "atwill.cli.main", "agent", "--state-dir",
                 str(self.node_dir)], stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)
        log.info("local agent started (pid %d, log %s)", self.agent.pid,
                 self.node_dir / "agent.log")

    def _admin_token(self) -> str:
        password = self.conf.path("admin-password").read_text().strip()
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
        with self._client() as client:
            resp = client.post("/identity/v3/auth/tokens", json=body)
            resp.raise_for_status()
            return resp.headers["X-Subject-Token"]

    def _flavors(self, token: str) -> None:
        with self._client(token) as client:
            have = {f["name"] for f in client.get("/compute/v2.1/flavors",
                                                  params={"is_public": "None"}).json()["flavors"]}
            for name, ram, disk, vcpus in FLAVORS:
                if name not in have:
                    client.post("/compute/v2.1/flavors", json={"flavor": {
                        "name": name, "ram": ram, "disk": disk, "vcpus": vcpus}})

    def _guest_image(self, token: str) -> None:
        from ..guest.build import build_image

        with self._client(token) as client:
            found = client.get("/image/v2/images", params={"name": GUEST_IMAGE}).json()
            if any(i["status"] == "active" for i in found["images"]):
                return
            log.info("building the guest image (first time: fetches Debian packages)")
            path = build_image().path
            image = client.post("/image/v2/images", json={
                "name": GUEST_IMAGE, "disk_format": "qcow2", "container_format": "bare",
                "visibility": "public"}).json()
            with open(path, "rb") as data:
                client.put(f"/image/v2/images/{image['id']}/file", content=data,
                           headers={"Content-Type": "application/octet-stream"}
                           ).raise_for_status()
            log.info("uploaded the guest image as %s", GUEST_IMAGE)


