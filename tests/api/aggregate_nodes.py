"""Nodes joined through the real join API, without an agent, for aggregate and usage tests.

The test speaks for each node with its client certificate (heartbeats), as
test_server_image does; the node row is the one the join made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from atwill.agent.client import tls_context
from atwill.pki import make_key_and_csr
from tests.cloud import Cloud, unique

INVENTORY = {"vcpus": 8, "memory_mb": 8192, "disk_gb": 50, "arch": "x86_64",
             "cpu_model": "atwill-test-cpu", "accelerator": "tcg"}


class JoinedNode:
    """A node joined with its own key and certificate."""

    def __init__(self, cloud: Cloud, tmp: Path, prefix: str,
                 inventory: dict[str, Any] | None = None) -> None:
        self.cloud, self.name, self.dir = cloud, unique(prefix), tmp
        key, csr = make_key_and_csr(self.name)
        token = json.loads(cloud.atwill("token", "create", "--json").stdout)["token"]
        with cloud.http() as client:
            resp = client.post("/cluster/v1/join", json={
                "token": token, "name": self.name, "csr": csr.decode(),
                "inventory": inventory or INVENTORY})
        assert resp.status_code == 201, resp.text
        self.id = resp.json()["node_id"]
        (tmp / f"{self.name}.pem").write_text(resp.json()["certificate"])
        (tmp / f"{self.name}-key.pem").write_bytes(key)

    def http(self) -> httpx.Client:
        context = tls_context(Path(self.cloud.cacert), self.dir / f"{self.name}.pem",
                              self.dir / f"{self.name}-key.pem")
        return httpx.Client(base_url=self.cloud.url, verify=context, timeout=30)

    def beat(self, instances: dict[str, Any] | None = None) -> None:
        with self.http() as client:
            resp = client.post(f"/cluster/v1/nodes/{self.id}/heartbeat",
                               json={"overlay": {}, "instances": instances or {}})
        assert resp.status_code == 200, resp.text

    def remove(self) -> None:
        self.cloud.atwill("node", "remove", self.name, "--force", check=False)
