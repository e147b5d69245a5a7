"""Nodes joined through the real join API, without an agent.

The test speaks for each node with its client certificate (heartbeats, reports); the
node row is the one the join made. keep_beating() repeats the last report in the
background as an agent would, so the node stays up however slow the test between beats
(the controller's monitor marks a silent node down within seconds).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from atwill.agent.client import tls_context
from atwill.pki import make_key_and_csr
from tests.api.admin_api import admin_request
from tests.cloud import Cloud, unique

INVENTORY = {"vcpus": 8, "memory_mb": 8192, "disk_gb": 50, "arch": "x86_64",
             "cpu_model": "atwill-test-cpu", "accelerator": "tcg"}


class JoinedNode:
    """A node joined with its own key and certificate."""

    def __init__(self, cloud: Cloud, tmp: Path, prefix: str,
                 inventory: dict[str, Any] | None = None) -> None:
        self.cloud, self.name, self.dir = cloud, unique(prefix), tmp
        key, csr = make_key_and_csr(self.name)
        # The join token through the cluster API, not `atwill token create` (a process and
        # a database session of its own: test_cluster tests that command).
        made = admin_request(cloud, "POST", "/cluster/v1/tokens", json={})
        assert made.status_code == 201, made.text
        token = made.json()["token"]
        with cloud.http() as client:
            resp = client.post("/cluster/v1/join", json={
                "token": token, "name": self.name, "csr": csr.decode(),
                "inventory": inventory or INVENTORY})
        assert resp.status_code == 201, resp.text
        self.id = resp.json()["node_id"]
        (tmp / f"{self.name}.pem").write_text(resp.json()["certificate"])
        (tmp / f"{self.name}-key.pem").write_bytes(key)
        self._report: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None

    def http(self) -> httpx.Client:
        context = tls_context(Path(self.cloud.cacert), self.dir / f"{self.name}.pem",
                              self.dir / f"{self.name}-key.pem")
        return httpx.Client(base_url=self.cloud.url, verify=context, timeout=30)

    def desired(self, after: int = -1, wait: float = 0) -> dict[str, Any]:
        """The node's desired state as its agent asks for it (a long-poll when wait > 0)."""
        with self.http() as client:
            resp = client.get(f"/cluster/v1/nodes/{self.id}/desired",
                              params={"after": after, "wait": wait}, timeout=wait + 30)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def beat(self, instances: dict[str, Any] | None = None) -> None:
        """Report instances (all of them: the report replaces the last one)."""
        with self._lock:
            self._report = dict(instances or {})
            resp = self._post()
        assert resp.status_code == 200, resp.text

    def _post(self) -> httpx.Response:
        with self.http() as client:
            return client.post(f"/cluster/v1/nodes/{self.id}/heartbeat",
                               json={"overlay": {}, "instances": self._report})

    def keep_beating(self, every: float = 0.5) -> None:
        """Repeat the last report every `every` seconds until stop_beating()."""
        def loop() -> None:
            while not self._stop.wait(every):
                with self._lock:
                    try:
                        self._post()
                    except httpx.HTTPError:
                        pass  # the controller restarting; the next beat tells
        self._beater = threading.Thread(target=loop, name=f"beat-{self.name}", daemon=True)
        self._beater.start()

    def stop_beating(self) -> None:
        self._stop.set()
        if self._beater is not None:
            self._beater.join(timeout=30)

    def remove(self) -> None:
        """What `atwill node remove --force` does (nodes.remove), through the cluster API;
        that command itself when the controller does not answer."""
        self.stop_beating()
        try:
            admin_request(self.cloud, "DELETE", f"/cluster/v1/nodes/{self.name}",
                          params={"force": "true"})
        except (httpx.HTTPError, AssertionError):
            self.cloud.atwill("node", "remove", self.name, "--force", check=False)


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """check()'s first true answer, polled every 0.1 s; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@contextlib.contextmanager
def beating_nodes(cloud: Cloud, tmp: Path, *names: str) -> Iterator[tuple[JoinedNode, ...]]:
    """Agent-less nodes joined, heartbeating in the background until the block ends."""
    nodes = tuple(JoinedNode(cloud, tmp, name) for name in names)
    for node in nodes:
        node.beat()
        node.keep_beating()
    try:
        yield nodes
    finally:
        for node in nodes:
            node.stop_beating()


def tiny_image(cloud: Cloud, tmp: Path, prefix: str, *extra: str) -> str:
    """The id of a new 64 KiB raw image of random bytes (extra: more `image create` flags)."""
    data = tmp / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    return cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                           "--container-format", "bare", *extra, unique(prefix),
                           "-f", "json")["id"]
