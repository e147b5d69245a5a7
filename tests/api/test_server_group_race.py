"""Server groups keep their rules when creates race (issue 20).

Creates into one group fired at the same moment from threads, against a controller of
the module's own holding exactly two nodes joined through the real join API: with one
member of an anti-affinity group already on node A, only one of them may take node B
and the others fail with NoValidHost. A group check made on what the transaction read
before another create committed would let two members share a node (on PostgreSQL the
per-project lock in servers/builds.py is what prevents it). Affinity is not raced here:
the weigher sends every racer that saw no member to the same node, so such a test
could not tell a lost lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.api.aggregate_nodes import JoinedNode, beating_nodes, tiny_image
from tests.api.lockout_cloud import own_cloud
from tests.cloud import Cloud, unique

V = "/compute/v2.1"
MICRO = {"OpenStack-API-Version": "compute 2.74"}  # networks "none" (2.37), host (2.74)
RACERS, ROUNDS = 6, 3


@dataclass
class Env:
    cloud: Cloud
    token: str
    nodes: tuple[JoinedNode, JoinedNode]
    flavor: str
    image: str

    def group(self, policy: str) -> str:
        with self.cloud.http(self.token) as client:
            resp = client.post(f"{V}/os-server-groups", headers=MICRO, json={
                "server_group": {"name": unique("racegrp"), "policy": policy}})
        assert resp.status_code == 200, resp.text
        return resp.json()["server_group"]["id"]

    def create(self, group: str, host: str | None = None) -> str:
        body = {"name": unique("racesrv"), "flavorRef": self.flavor, "imageRef": self.image,
                "networks": "none"} | ({"host": host} if host else {})
        with self.cloud.http(self.token) as client:
            resp = client.post(f"{V}/servers", headers=MICRO, json={
                "server": body, "os:scheduler_hints": {"group": group}})
        assert resp.status_code == 202, resp.text
        return resp.json()["server"]["id"]

    def race(self, group: str) -> list[dict]:
        """RACERS creates released together by a barrier; each server as shown after."""
        start = threading.Barrier(RACERS)

        def one(_: int) -> str:
            start.wait(timeout=30)
            return self.create(group)

        with ThreadPoolExecutor(RACERS) as pool:
            ids = list(pool.map(one, range(RACERS)))
        return [self.show(server_id) for server_id in ids]

    def show(self, server_id: str) -> dict:
        with self.cloud.http(self.token) as client:
            resp = client.get(f"{V}/servers/{server_id}", headers=MICRO)
        assert resp.status_code == 200, resp.text
        return resp.json()["server"]

    def members(self, group: str) -> list[str]:
        with self.cloud.http(self.token) as client:
            resp = client.get(f"{V}/os-server-groups/{group}", headers=MICRO)
        assert resp.status_code == 200, resp.text
        return resp.json()["server_group"]["members"]


@pytest.fixture(scope="module")
def env(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    for cloud in own_cloud(engine):
        tmp = tmp_path_factory.mktemp("grouprace")
        image = tiny_image(cloud, tmp, "raceimg")
        flavor = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus",
                                 "1", unique("raceflv"), "-f", "json")["id"]
        cloud.openstack("quota", "set", "--instances", "-1", "--cores", "-1", "--ram", "-1",
                        "admin")  # the rounds' servers stay (the cloud goes with them)
        with beating_nodes(cloud, tmp, "racea", "raceb") as nodes:
            yield Env(cloud, cloud.token(), nodes, flavor, image)


def host(server: dict) -> str | None:
    return server["OS-EXT-SRV-ATTR:host"]


def test_racing_creates_never_share_a_node_in_an_anti_affinity_group(env: Env) -> None:
    a, b = env.nodes
    for _ in range(ROUNDS):
        group = env.group("anti-affinity")
        seed = env.show(env.create(group, host=a.name))
        assert host(seed) == a.name, seed
        raced = env.race(group)
        landed = [s for s in raced if host(s)]
        # The first create to commit takes B; every later one sees it there.
        assert [host(s) for s in landed] == [b.name], [(host(s), s["status"]) for s in raced]
        for server in raced:
            if server in landed:
                continue
            assert server["status"] == "ERROR", server
            assert "No valid host was found" in server["fault"]["message"], server
            assert "ServerGroupAntiAffinityFilter" in server["fault"]["message"], server
        placed = Counter(host(s) for s in [seed, *raced] if host(s))
        assert placed == {a.name: 1, b.name: 1}
        assert len(env.members(group)) == RACERS + 1

