"""Volume work takes its locks in one order (the project's quota lock, then the storage
nodes' capacity locks in id order, then volume rows in id order), so concurrent requests on
one volume wait for each other instead of deadlocking:

1. a boot from a volume racing an extend and a snapshot of that volume: every answer is a
   202 or Cinder's/Nova's 400, never a 500 (on PostgreSQL the boot held the project's lock
   and waited for the volume row that the extend held while waiting for the project's);
2. two extends of one volume at once: one is taken, the other refused as Cinder does (the
   volume is extending) — on SQLite the second used to win over the first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.api.test_volume_capacity import purge as purge_volumes
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, unique

V = "/compute/v2.1"
V3 = "/volume/v3"
NOVA = {"OpenStack-API-Version": "compute 2.79"}
ROUNDS = 12


@pytest.fixture(scope="module")
def node(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageNode]:
    made = StorageNode(cloud, tmp_path_factory.mktemp("vol-lock-order"), "vlock")
    made.keep_beating()
    try:
        yield made
    finally:
        made.remove()


@pytest.fixture(scope="module")
def flavor(cloud: Cloud) -> Iterator[str]:
    name = unique("vlflv")
    made = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "0", "--vcpus", "1",
                           name, "-f", "json")["id"]
    try:
        yield made
    finally:
        cloud.openstack("flavor", "delete", made)


def new_volume(client: httpx.Client, node: StorageNode) -> str:
    resp = client.post(f"{V3}/volumes", json={"volume": {"size": 1, "name": unique("vlk")}})
    assert resp.status_code == 202, resp.text
    vid = resp.json()["volume"]["id"]
    node.converge()
    resp = client.post(f"{V3}/volumes/{vid}/action",
                       json={"os-set_bootable": {"bootable": True}})
    assert resp.status_code == 200, resp.text
    return vid


def race(token: str, calls: list[Callable[[httpx.Client], httpx.Response]],
         cloud: Cloud) -> list[httpx.Response]:
    """Run the calls at once (each its own connection); their responses in call order."""
    barrier = threading.Barrier(len(calls))
    out: list[httpx.Response | None] = [None] * len(calls)

    def run(i: int) -> None:
        with cloud.http(token) as client:
            barrier.wait(timeout=60)
            out[i] = calls[i](client)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(r is not None for r in out)
    return [r for r in out if r is not None]


def purge(cloud: Cloud, node: StorageNode, servers: list[str], volumes: list[str]) -> None:
    with cloud.http(cloud.token()) as client:
        for sid in servers:
            client.delete(f"{V}/servers/{sid}")
        deadline = time.monotonic() + 60
        while servers and time.monotonic() < deadline:
            servers = [s for s in servers
                       if client.get(f"{V}/servers/{s}").status_code != 404]
            time.sleep(0.2)
        assert servers == []
    purge_volumes(cloud, node, volumes)


def test_boot_from_a_volume_racing_its_extend_and_snapshot(cloud: Cloud, node: StorageNode,
                                                           flavor: str) -> None:
    token = cloud.token()
    for round_ in range(ROUNDS):
        servers: list[str] = []
        with cloud.http(token) as client:
            vid = new_volume(client, node)
        pause = (round_ % 4) * 0.01  # the others start a little after the boot

        def boot(client: httpx.Client, vid: str = vid) -> httpx.Response:
            return client.post(f"{V}/servers", headers=NOVA, json={"server": {
                "name": unique("vlsrv"), "flavorRef": flavor, "networks": "none",
                "block_device_mapping_v2": [{
                    "boot_index": 0, "uuid": vid, "source_type": "volume",
                    "destination_type": "volume"}]}})

        def extend(client: httpx.Client, vid: str = vid,
                   pause: float = pause) -> httpx.Response:
            time.sleep(pause)
            return client.post(f"{V3}/volumes/{vid}/action",
                               json={"os-extend": {"new_size": 2}})

        def snapshot(client: httpx.Client, vid: str = vid,
                     pause: float = pause) -> httpx.Response:
            time.sleep(pause)
            return client.post(f"{V3}/snapshots", json={"snapshot": {
                "volume_id": vid, "force": True, "name": unique("vls")}})

        try:
            booted, extended, snapped = race(token, [boot, extend, snapshot], cloud)
            if booted.status_code == 202:
                servers.append(booted.json()["server"]["id"])
            answers = [(r.status_code, r.text[:300]) for r in (booted, extended, snapped)]
            assert all(code in (202, 400) for code, _ in answers), answers
            if booted.status_code == 400:  # refused only because the volume was busy
                assert "status" in booted.text, booted.text
        finally:
            purge(cloud, node, servers, [vid])


def test_two_extends_of_one_volume_at_once(cloud: Cloud, node: StorageNode) -> None:
    token = cloud.token()
    volumes: list[str] = []
    try:
        for _ in range(4):
            with cloud.http(token) as client:
                vid = new_volume(client, node)
            volumes.append(vid)
            sizes = (2, 3)
            calls = [lambda c, vid=vid, size=size: c.post(  # type: ignore[misc]
                f"{V3}/volumes/{vid}/action", json={"os-extend": {"new_size": size}})
                for size in sizes]
            first, second = race(token, calls, cloud)
            codes = sorted((first.status_code, second.status_code))
            assert codes == [202, 400], (first.text, second.text)
            refused = first if first.status_code == 400 else second
            assert "extending" in refused.json()["badRequest"]["message"], refused.text
            taken = sizes[0] if first.status_code == 202 else sizes[1]
            with cloud.http(token) as client:
                shown = client.get(f"{V3}/volumes/{vid}").json()["volume"]
            assert (shown["size"], shown["status"]) == (taken, "extending"), shown
    finally:
        purge(cloud, node, [], volumes)
