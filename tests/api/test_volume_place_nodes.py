"""New volumes lock only the storage node they go to (volume/placement.py): boots that
make a blank volume racing plain volume creates, from many projects, over two storage
nodes with room for fewer than asked, fill each node exactly to its room and never past
it; every request is answered as Nova and Cinder answer (202), the rest left in error
(no valid backend), and no request ends in a lock error."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.test_compute_nonadmin import make_user
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, unique

V, V3 = "/compute/v2.1", "/volume/v3"
NOVA = {"OpenStack-API-Version": "compute 2.79"}
ROOM = 2  # GiB each node can take
RACERS = 8  # half boots, half creates: 8 GiB asked, 4 GiB of room


@pytest.fixture(scope="module")
def nodes(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[StorageNode]]:
    made: list[StorageNode] = []
    try:
        for prefix in ("vpla", "vplb"):
            node = StorageNode(cloud, tmp_path_factory.mktemp(prefix), prefix, free_gb=ROOM)
            node.keep_beating()
            made.append(node)
        yield made
    finally:
        for node in made:
            node.remove()


@pytest.fixture(scope="module")
def flavor(cloud: Cloud) -> Iterator[str]:
    made = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "0", "--vcpus", "1",
                           unique("vplf"), "-f", "json")["id"]
    try:
        yield made
    finally:
        cloud.openstack("flavor", "delete", made)


def _boot(client: httpx.Client, flavor: str) -> httpx.Response:
    return client.post(f"{V}/servers", headers=NOVA, json={"server": {
        "name": unique("vplsrv"), "flavorRef": flavor, "networks": "none",
        "block_device_mapping_v2": [{"boot_index": 0, "source_type": "blank",
                                     "destination_type": "volume", "volume_size": 1}]}})


def _create(client: httpx.Client) -> httpx.Response:
    return client.post(f"{V3}/volumes", json={"volume": {"size": 1, "name": unique("vpl")}})


def _boot_volumes(client: httpx.Client, server: str) -> list[str]:
    deadline = time.monotonic() + 30
    while True:
        shown = client.get(f"{V}/servers/{server}", headers=NOVA).json()["server"]
        attached = [v["id"] for v in shown.get("os-extended-volumes:volumes_attached", [])]
        if attached or time.monotonic() > deadline:
            return attached
        time.sleep(0.2)


def _purge(cloud: Cloud, nodes: list[StorageNode], servers: list[str],
           volumes: list[str]) -> None:
    with cloud.http(cloud.token()) as client:
        for sid in servers:
            client.delete(f"{V}/servers/{sid}")
        deadline = time.monotonic() + 60
        while servers and time.monotonic() < deadline:
            servers = [s for s in servers if client.get(f"{V}/servers/{s}").status_code != 404]
            time.sleep(0.2)
        assert servers == []
        for vid in volumes:
            resp = client.post(f"{V3}/volumes/{vid}/action", json={"os-force_delete": {}})
            assert resp.status_code in (202, 404), resp.text
        for node in nodes:
            node.converge()
        for vid in volumes:
            assert client.get(f"{V3}/volumes/{vid}").status_code == 404


def test_boots_and_creates_fill_two_nodes_exactly(cloud: Cloud, nodes: list[StorageNode],
                                                   flavor: str) -> None:
    tokens = [cloud.token(make_user(cloud, "member")) for _ in range(RACERS)]
    barrier = threading.Barrier(RACERS)
    answers: list[tuple[str, httpx.Response] | None] = [None] * RACERS

    def run(index: int) -> None:
        with cloud.http(tokens[index]) as client:
            barrier.wait(timeout=60)
            kind = "boot" if index % 2 else "create"
            answers[index] = (kind, _boot(client, flavor) if kind == "boot" else _create(client))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    servers = [r.json()["server"]["id"] for a in answers if a is not None
               for kind, r in [a] if kind == "boot" and r.status_code == 202]
    volumes = [r.json()["volume"]["id"] for a in answers if a is not None
               for kind, r in [a] if kind == "create" and r.status_code == 202]
    try:
        got = [(kind, r.status_code, r.text[:300]) for kind, r in filter(None, answers)]
        assert len(got) == RACERS and all(code == 202 for _, code, _ in got), got
        with cloud.http(cloud.token()) as client:
            for sid in servers:
                volumes += _boot_volumes(client, sid)
            assert len(volumes) == RACERS
            shown = [client.get(f"{V3}/volumes/{vid}").json()["volume"] for vid in volumes]
        placed = [v for v in shown if v["status"] != "error"]
        hosts = {f"{n.name}@atwill#atwill": n for n in nodes}
        per_node = {h: sum(v["size"] for v in placed if v["os-vol-host-attr:host"] == h)
                    for h in hosts}
        assert per_node == dict.fromkeys(hosts, ROOM), [
            (v["status"], v["os-vol-host-attr:host"]) for v in shown]
        for host, node in hosts.items():
            assert set(node.wanted()) == {v["id"] for v in placed
                                          if v["os-vol-host-attr:host"] == host}
    finally:
        _purge(cloud, nodes, servers, volumes)


def test_boots_of_two_servers_each_fill_two_nodes_exactly(
        cloud: Cloud, nodes: list[StorageNode], flavor: str) -> None:
    """Creates of two servers each (count=2: one transaction attaches both servers'
    volumes in turn) racing over two 2 GiB nodes: every one answered 202, never a lock
    error (review of 293b893: the second server's node was waited for with the first's
    held, and two such creates could deadlock), the nodes filled exactly."""
    boots = RACERS // 2  # 8 volumes of 1 GiB asked, 4 GiB of room
    tokens = [cloud.token(make_user(cloud, "member")) for _ in range(boots)]
    barrier = threading.Barrier(boots)
    answers: list[httpx.Response | None] = [None] * boots

    def run(index: int) -> None:
        with cloud.http(tokens[index]) as client:
            barrier.wait(timeout=60)
            answers[index] = client.post(f"{V}/servers", headers=NOVA, json={"server": {
                "name": unique("vplmulti"), "flavorRef": flavor, "networks": "none",
                "min_count": 2, "max_count": 2, "return_reservation_id": True,
                "block_device_mapping_v2": [{
                    "boot_index": 0, "source_type": "blank", "destination_type": "volume",
                    "volume_size": 1, "delete_on_termination": True}]}})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(boots)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    servers: list[str] = []
    volumes: list[str] = []
    try:
        got = [(r.status_code, r.text[:300]) for r in answers if r is not None]
        assert len(got) == boots and all(code == 202 for code, _ in got), got
        with cloud.http(cloud.token()) as client:
            for resp in filter(None, answers):
                listed = client.get(f"{V}/servers", headers=NOVA, params={
                    "reservation_id": resp.json()["reservation_id"],
                    "all_tenants": "1"}).json()["servers"]
                servers += [s["id"] for s in listed]
            assert len(servers) == 2 * boots
            for sid in servers:
                volumes += _boot_volumes(client, sid)
            assert len(volumes) == 2 * boots
            shown = [client.get(f"{V3}/volumes/{vid}").json()["volume"] for vid in volumes]
        placed = [v for v in shown if v["status"] != "error"]
        hosts = {f"{n.name}@atwill#atwill" for n in nodes}
        per_node = {h: sum(v["size"] for v in placed if v["os-vol-host-attr:host"] == h)
                    for h in hosts}
        assert per_node == dict.fromkeys(hosts, ROOM), [
            (v["status"], v["os-vol-host-attr:host"]) for v in shown]
    finally:
        _purge(cloud, nodes, servers, volumes)
