"""A heartbeat's VM count beyond its 32-bit column is refused (400) on the lean path as on
the full one: buffered, it failed every batched flush of its worker (cluster/liveness.py)
while the lean replies kept saying 'up'."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.aggregate_nodes import JoinedNode
from tests.cloud import Cloud

BODY: dict[str, Any] = {"overlay": {}, "instances": {}, "running_vms": 0,
                        "host": {"uptime_s": 1}}


@pytest.fixture()
def node(cloud: Cloud, tmp_path: Path) -> Iterator[JoinedNode]:
    made = JoinedNode(cloud, tmp_path, "bounds")
    yield made
    made.remove()


def test_a_vm_count_beyond_the_column_is_refused(node: JoinedNode) -> None:
    url = f"/cluster/v1/nodes/{node.id}/heartbeat"
    with node.http() as client:
        for _ in range(2):  # full, then lean
            assert client.post(url, json=BODY).status_code == 200
        for count in (2**31, 2**63):
            huge = client.post(url, json={**BODY, "running_vms": count})
            assert huge.status_code == 400, huge.text
        inventory = client.post(url, json={**BODY, "running_vms": 2**31, "inventory": {}})
        assert inventory.status_code == 400, inventory.text  # the full path too
        fine = client.post(url, json={**BODY, "running_vms": 2**31 - 1})
        assert fine.status_code == 200, fine.text
