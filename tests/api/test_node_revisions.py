"""Per-node revisions through the real cluster API: a change wakes the long-polls of the
nodes it concerns and no other, across two workers and a controller restart.

The nodes are joined without an agent (aggregate_nodes.JoinedNode); each long-poll is
held open as an agent holds it, and lands on either worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.api.aggregate_nodes import JoinedNode, wait_for
from tests.cloud import Cloud, unique
from tests.conftest import fresh_database_url

HELD = 2.5  # seconds a long-poll that must not be woken is held open


@dataclass
class Fleet:
    cloud: Cloud
    nodes: dict[str, JoinedNode]
    flavor: str
    image: str

    def desired(self, key: str, after: int = -1, wait: float = 0) -> tuple[dict, float]:
        started = time.monotonic()
        with self.nodes[key].http() as client:
            resp = client.get(f"/cluster/v1/nodes/{self.nodes[key].id}/desired",
                              params={"after": after, "wait": wait}, timeout=wait + 30)
        assert resp.status_code == 200, resp.text
        return resp.json(), time.monotonic() - started

    def revisions(self) -> dict[str, int]:
        return {k: self.desired(k)[0]["revision"] for k in self.nodes}

    def polls(self, pool: ThreadPoolExecutor, after: dict[str, int],
              waits: dict[str, float]) -> dict[str, Future]:
        held = {k: pool.submit(self.desired, k, after[k], w) for k, w in waits.items()}
        time.sleep(0.5)  # every long-poll is held before the change is made
        assert not any(f.done() for f in held.values())
        return held


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    for url in fresh_database_url("sqlite"):
        cloud = Cloud(url, workers=2)
        try:
            cloud.init()
            cloud.configure(ha_auto_evacuate=False)
            cloud.start()
            tmp = tmp_path_factory.mktemp("noderev")
            nodes = {k: JoinedNode(cloud, tmp, f"rev{k}") for k in "abc"}
            for node in nodes.values():
                node.keep_beating()
            data = tmp / "disk.img"
            data.write_bytes(os.urandom(64 * 1024))
            flavor = unique("revflv")
            cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1",
                            flavor)
            image = cloud.openstack("image", "create", "--file", str(data), "--disk-format",
                                    "raw", "--container-format", "bare", unique("revimg"),
                                    "-f", "json")["id"]
            yield Fleet(cloud, nodes, flavor, image)
            for node in nodes.values():
                node.stop_beating()
        finally:
            cloud.destroy()


def test_a_server_on_node_a_wakes_a_and_no_other_node(fleet: Fleet) -> None:
    base = fleet.revisions()
    with ThreadPoolExecutor(3) as pool:
        held = fleet.polls(pool, base, {"a": 30, "b": HELD, "c": HELD})
        server = fleet.cloud.openstack(
            "server", "create", "--flavor", fleet.flavor, "--image", fleet.image,
            "--no-network", "--availability-zone", f"nova:{fleet.nodes['a'].name}",
            unique("revsrv"), "-f", "json")["id"]
        state, waited = held["a"].result()
        assert state["revision"] > base["a"] and waited < 15
        assert server in {i["id"] for i in state["instances"]}
        for key in "bc":
            other, held_for = held[key].result()
            assert other["revision"] == base[key] and held_for >= HELD - 0.1
    fleet.cloud.openstack("server", "delete", server)
    wait_for(lambda: server not in {i["id"] for i in fleet.desired("a")[0]["instances"]},
             15, "the deleted server to leave node a")
    assert fleet.revisions()["b"] == base["b"]  # neither its creation nor its deletion


def test_a_network_change_wakes_every_node_with_a_port_on_it(fleet: Fleet) -> None:
    cloud = fleet.cloud
    net = cloud.openstack("network", "create", unique("revnet"), "-f", "json")["id"]
    ports = [cloud.openstack("port", "create", "--network", net, "--host",
                             fleet.nodes[k].name, "--device-owner", "compute:nova",
                             unique("revport"), "-f", "json")["id"] for k in "ab"]
    try:
        base = fleet.revisions()
        with ThreadPoolExecutor(3) as pool:
            held = fleet.polls(pool, base, {"a": 30, "b": 30, "c": HELD})
            subnet = cloud.openstack("subnet", "create", "--network", net, "--subnet-range",
                                     "10.77.0.0/24", unique("revsub"), "-f", "json")["id"]
            for key in "ab":
                state, waited = held[key].result()
                assert state["revision"] > base[key] and waited < 15
                (network,) = [n for n in state["network"]["networks"] if n["id"] == net]
                assert [s["id"] for s in network["subnets"]] == [subnet]
            other, held_for = held["c"].result()
            assert other["revision"] == base["c"] and held_for >= HELD - 0.1
    finally:
        for port in ports:
            cloud.openstack("port", "delete", port)
        cloud.openstack("network", "delete", net)


def test_after_a_restart_an_agent_s_revision_keeps_its_meaning(fleet: Fleet) -> None:
    base = fleet.revisions()
    fleet.cloud.stop()
    fleet.cloud.start()
    # Held, not answered at once: nothing changed for b while the controller was away.
    same, held_for = fleet.desired("b", base["b"], HELD)
    assert same["revision"] == base["b"] and held_for >= HELD - 0.1
    # A revision this controller never gave out (a database restored from a backup): the
    # whole state at once, which the agent then applies.
    fresh, waited = fleet.desired("b", base["b"] + 10**6, 20)
    assert fresh["revision"] == base["b"] and waited < 5
    with ThreadPoolExecutor(2) as pool:
        held = fleet.polls(pool, base, {"a": 30, "b": HELD})
        fleet.cloud.atwill("node", "disable", fleet.nodes["a"].name)
        state, waited = held["a"].result()
        assert state["revision"] > base["a"] and state["enabled"] is False and waited < 15
        other, _ = held["b"].result()
        assert other["revision"] == base["b"]
    fleet.cloud.atwill("node", "enable", fleet.nodes["a"].name)
