"""A node the HA monitor marks down wakes its own long-poll only, through the real cluster
API: whether a node is up is in no other node's desired state (its overlay and HA peers
keep it, so a partitioned node is told from a dead one and is reachable on its return).
Before, each node marked down moved every node's revision: O(nodes) rebuilds per node
down, O(nodes^2) in a cascade (bench fleet)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.api.admin_api import admin_request
from tests.api.aggregate_nodes import JoinedNode, wait_for
from tests.cloud import Cloud
from tests.conftest import fresh_database_url

HELD = 6.0  # seconds the others' long-polls are held: the node is down well within


@pytest.fixture
def three(tmp_path: Path) -> Iterator[tuple[Cloud, dict[str, JoinedNode]]]:
    for url in fresh_database_url("sqlite"):
        cloud = Cloud(url, workers=1)
        try:
            cloud.init()
            cloud.configure(ha_auto_evacuate=False)
            cloud.start()
            nodes = {k: JoinedNode(cloud, tmp_path, f"fan{k}") for k in "abc"}
            for node in nodes.values():
                node.keep_beating(0.3)
            yield cloud, nodes
            for node in nodes.values():
                node.stop_beating()
        finally:
            cloud.destroy()


def _desired(node: JoinedNode, after: int = -1, wait: float = 0) -> tuple[dict, float]:
    started = time.monotonic()
    state = node.desired(after, wait)
    return state, time.monotonic() - started


def _state(cloud: Cloud, node: JoinedNode) -> str:
    resp = admin_request(cloud, "GET", f"/cluster/v1/nodes/{node.name}")
    assert resp.status_code == 200, resp.text
    return resp.json()["state"]


def test_a_node_marked_down_wakes_no_other_node(three: tuple[Cloud, dict[str, JoinedNode]]
                                                ) -> None:
    cloud, nodes = three
    wait_for(lambda: all(_state(cloud, n) == "up" for n in nodes.values()), 15, "all up")
    before = {k: _desired(n)[0] for k, n in nodes.items()}
    with ThreadPoolExecutor(2) as pool:
        held = {k: pool.submit(_desired, nodes[k], before[k]["revision"], HELD) for k in "ab"}
        time.sleep(0.5)
        nodes["c"].stop_beating()
        wait_for(lambda: _state(cloud, nodes["c"]) == "down", HELD - 1, "node c down")
        for key in "ab":
            state, held_for = held[key].result()
            assert state["revision"] == before[key]["revision"] and held_for >= HELD - 0.1
    # c stays a peer of a (overlay and HA probes): a's desired state did not change at all.
    after = _desired(nodes["a"])[0]
    assert after == before["a"]
    assert nodes["c"].name in {p["name"] for p in after["overlay"]["peers"]}
    assert _desired(nodes["c"])[0]["revision"] > before["c"]["revision"]  # its own moved
