"""A storage node without an agent: joined with a 'storage' inventory, it reads its
desired state and reports its volumes as the storage agent would (notes: volume-contract)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from atwill.controller.db.compute import Node
from atwill.controller.db.session import Database
from tests.api.aggregate_nodes import INVENTORY, JoinedNode
from tests.cloud import Cloud, unique

STORAGE = {"path": "/var/lib/atwill-agent/volumes", "total_gb": 100, "free_gb": 100,
           "formats": ["qcow2"]}


class StorageNode(JoinedNode):
    def __init__(self, cloud: Cloud, tmp: Path, prefix: str = "stor",
                 free_gb: int = 100) -> None:
        super().__init__(cloud, tmp, prefix,
                         inventory={**INVENTORY, "storage": {**STORAGE, "free_gb": free_gb}})
        self.volumes: dict[str, Any] = {}

    def own_zone(self, prefix: str) -> None:
        """Put it in an availability zone of its own (a new name from prefix): its vCPUs
        are then no destination, the servers staying in nova."""
        db = Database(self.cloud.db_url())
        try:
            with db.session() as session:
                session.execute(update(Node).where(Node.id == self.id).values(
                    availability_zone=unique(prefix)))
        finally:
            db.dispose()

    def _post(self) -> httpx.Response:
        with self.http() as client:
            return client.post(f"/cluster/v1/nodes/{self.id}/heartbeat", json={
                "overlay": {}, "instances": self._report, "volumes": self.volumes})

    def report(self, volumes: dict[str, Any]) -> None:
        """Report these volumes (all of them: one not listed is not on disk)."""
        with self._lock:
            self.volumes = volumes
            resp = self._post()
        assert resp.status_code == 200, resp.text

    def desired(self) -> dict[str, Any]:
        with self.http() as client:
            resp = client.get(f"/cluster/v1/nodes/{self.id}/desired", params={"wait": 0})
        assert resp.status_code == 200, resp.text
        return resp.json()

    def wanted(self) -> dict[str, dict[str, Any]]:
        return {v["id"]: v for v in self.desired()["storage"]["volumes"]}

    def export_targets(self, vid: str) -> list[tuple[str, str, int]]:
        """(node id, node name, how many attachment keys it admits) of each export."""
        return [(e["node_id"], e["client_cn"], len(e["psk"] or ()))
                for e in self.wanted()[vid]["exports"]]

    def converge(self, host: str = "10.99.0.5") -> dict[str, dict[str, Any]]:
        """Make every desired volume, snapshot and export exist, as a healthy agent."""
        wanted = self.wanted()
        self.report({vid: {"state": "available", "size_gb": v["size_gb"],
                           "snapshots": dict.fromkeys(v["snapshots"], "available"),
                           "exports": {e["node_id"]: {"host": host, "port": 10809 + i}
                                       for i, e in enumerate(v["exports"])}}
                     for vid, v in wanted.items()})
        return wanted
