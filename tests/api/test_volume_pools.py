"""`openstack volume backend pool list` (GET scheduler-stats/get_pools): one pool per
storage node with the capacity and backend (file or LVM thin) its inventory reports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.aggregate_nodes import INVENTORY, JoinedNode
from tests.api.test_compute_nonadmin import make_user
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud

LVM = {"path": "/var/lib/atwill-node/storage", "backend": "lvm", "volume_group": "vg0",
       "thin_pool": "thin", "total_gb": 500, "free_gb": 420, "formats": ["raw"]}


@pytest.fixture(scope="module")
def nodes(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[JoinedNode, JoinedNode]]:
    tmp = tmp_path_factory.mktemp("vol-pools")
    files = StorageNode(cloud, tmp, "vpf", free_gb=60)
    # It joined with an LVM thin pool, as `atwill join --storage-vg` reports one.
    lvm = JoinedNode(cloud, tmp, "vpl", inventory={**INVENTORY, "storage": LVM})
    try:
        yield files, lvm
    finally:
        files.remove()
        lvm.remove()


def test_each_storage_node_is_a_pool_with_its_backend(
        cloud: Cloud, nodes: tuple[JoinedNode, JoinedNode]) -> None:
    files, lvm = nodes
    rows = cloud.openstack("volume", "backend", "pool", "list", "--long", "-f", "json")
    pools = {r["Name"]: r["Capabilities"] for r in rows}
    file_pool, lvm_pool = pools[f"{files.name}@atwill#atwill"], pools[f"{lvm.name}@atwill#atwill"]
    assert (file_pool["total_capacity_gb"], file_pool["free_capacity_gb"]) == (100, 60)
    assert (lvm_pool["total_capacity_gb"], lvm_pool["free_capacity_gb"]) == (500, 420)
    assert (file_pool["atwill:backend"], lvm_pool["atwill:backend"]) == ("file", "lvm")
    names = cloud.openstack("volume", "backend", "pool", "list", "-f", "json")
    assert {"Name": f"{lvm.name}@atwill#atwill"} in names
    with cloud.http(cloud.token()) as client:
        detail = client.get("/volume/v3/scheduler-stats/get_pools",
                            params={"detail": "true", "name": f"{lvm.name}@atwill#atwill"})
        assert detail.status_code == 200, detail.text
        (only,) = detail.json()["pools"]
        assert only["capabilities"]["atwill:backend"] == "lvm"
        assert only["capabilities"]["location_info"] == "atwill:lvm:vg0/thin"
        plain = client.get("/volume/v3/scheduler-stats/get_pools").json()["pools"]
        assert {"name": f"{files.name}@atwill#atwill"} in plain


def test_pools_are_for_admins(cloud: Cloud, nodes: tuple[JoinedNode, JoinedNode]) -> None:
    member = make_user(cloud, "member")
    with cloud.http(cloud.token(member)) as client:
        resp = client.get("/volume/v3/scheduler-stats/get_pools")
    assert resp.status_code == 403, resp.text
    assert "scheduler_stats:get_pools" in resp.json()["forbidden"]["message"]


def test_a_bad_detail_is_a_400(cloud: Cloud, nodes: tuple[JoinedNode, JoinedNode]) -> None:
    with cloud.http(cloud.token()) as client:
        resp = client.get("/volume/v3/scheduler-stats/get_pools", params={"detail": "maybe"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["badRequest"]["message"] == "Value 'maybe' for 'detail' is not a boolean."
