"""A storage node's space is claimed atomically, and what Cinder's scheduler refuses is
refused as it does: concurrent creates from many projects onto a node with room for fewer
land exactly the room's worth (the rest are in error: no valid backend); an extend or a
snapshot on a node whose volume service is disabled (or that has no room) is accepted and
comes to nothing as in Cinder; a storage node holding volumes is not removed silently."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.api.test_compute_nonadmin import make_user
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, unique

V3 = "/volume/v3"
ROOM = 3  # GiB the node can take
RACERS = 8


@pytest.fixture(scope="module")
def node(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageNode]:
    made = StorageNode(cloud, tmp_path_factory.mktemp("vol-capacity"), "vcap", free_gb=ROOM)
    made.keep_beating()
    try:
        yield made
    finally:
        made.remove()


def show(client: httpx.Client, vid: str) -> dict:
    resp = client.get(f"{V3}/volumes/{vid}")
    assert resp.status_code == 200, resp.text
    return resp.json()["volume"]


def purge(cloud: Cloud, node: StorageNode, volume_ids: list[str]) -> None:
    """Force-delete the volumes; the node reports them gone: no row is left."""
    with cloud.http(cloud.token()) as client:
        for vid in volume_ids:
            resp = client.post(f"{V3}/volumes/{vid}/action", json={"os-force_delete": {}})
            assert resp.status_code in (202, 404), resp.text
        node.converge()
        for vid in volume_ids:
            assert client.get(f"{V3}/volumes/{vid}").status_code == 404


def test_concurrent_creates_never_overbook_a_node(cloud: Cloud, node: StorageNode) -> None:
    # One project each: on PostgreSQL a project's creates are serialized by its quota lock,
    # so only creates of different projects race for the node's space.
    users = [make_user(cloud, "member") for _ in range(RACERS)]
    tokens = [cloud.token(user) for user in users]
    barrier = threading.Barrier(RACERS)
    made: list[dict] = []
    errors: list[str] = []

    def create(token: str) -> None:
        with cloud.http(token) as client:
            barrier.wait(timeout=60)
            resp = client.post(f"{V3}/volumes", json={"volume": {"size": 1,
                                                                 "name": unique("race")}})
        if resp.status_code == 202:
            made.append(resp.json()["volume"])
        else:
            errors.append(resp.text)

    threads = [threading.Thread(target=create, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert errors == [] and len(made) == RACERS  # Cinder accepts every create (202)
        with cloud.http(cloud.token()) as client:
            shown = [show(client, v["id"]) for v in made]
        placed = [v for v in shown if v["status"] != "error"]
        assert len(placed) == ROOM, [v["status"] for v in shown]
        assert {v["os-vol-host-attr:host"] for v in placed} == {f"{node.name}@atwill#atwill"}
        assert set(node.wanted()) == {v["id"] for v in placed}
        assert sum(v["size"] for v in placed) <= ROOM  # never more than its space
    finally:
        purge(cloud, node, [v["id"] for v in made])


def quota_used(client: httpx.Client, project_id: str) -> int:
    resp = client.get(f"{V3}/os-quota-sets/{project_id}", params={"usage": "true"})
    assert resp.status_code == 200, resp.text
    return resp.json()["quota_set"]["gigabytes"]["in_use"]


def test_extend_and_snapshot_on_a_disabled_volume_service(cloud: Cloud,
                                                          node: StorageNode) -> None:
    host = f"{node.name}@atwill"
    with cloud.http(cloud.token()) as client:
        created = client.post(f"{V3}/volumes", json={"volume": {"size": 1}})
        assert created.status_code == 202, created.text
        vid = created.json()["volume"]["id"]
        try:
            project = show(client, vid)["os-vol-tenant-attr:tenant_id"]
            node.converge()
            assert show(client, vid)["status"] == "available"
            used = quota_used(client, project)
            cloud.openstack("volume", "service", "set", "--disable", host, "cinder-volume")

            # Cinder's scheduler finds no backend for the extend: accepted (202), the volume
            # back to available at its old size, the quota not taken, the node not asked.
            resp = client.post(f"{V3}/volumes/{vid}/action",
                               json={"os-extend": {"new_size": 2}})
            assert resp.status_code == 202, resp.text
            after = show(client, vid)
            assert (after["status"], after["size"]) == ("available", 1)
            assert node.wanted()[vid]["size_gb"] == 1
            assert quota_used(client, project) == used

            # A snapshot: accepted, left in error by the scheduler, never made on the node.
            resp = client.post(f"{V3}/snapshots", json={"snapshot": {"volume_id": vid}})
            assert resp.status_code == 202, resp.text
            sid = resp.json()["snapshot"]["id"]
            snap = client.get(f"{V3}/snapshots/{sid}").json()["snapshot"]
            assert snap["status"] == "error"
            assert node.wanted()[vid]["snapshots"] == []
            assert client.delete(f"{V3}/snapshots/{sid}").status_code == 202
            assert client.get(f"{V3}/snapshots/{sid}").status_code == 404

            # Enabled again: a snapshot is made (its node asked), and an extend with room
            # goes ahead; one past the room is accepted and comes to nothing (Cinder's
            # capacity filter refuses it).
            cloud.openstack("volume", "service", "set", "--enable", host, "cinder-volume")
            resp = client.post(f"{V3}/snapshots", json={"snapshot": {"volume_id": vid}})
            assert resp.status_code == 202, resp.text
            sid = resp.json()["snapshot"]["id"]
            assert client.get(f"{V3}/snapshots/{sid}").json()["snapshot"]["status"] == \
                "creating"
            assert node.wanted()[vid]["snapshots"] == [sid]
            node.converge()
            resp = client.post(f"{V3}/volumes/{vid}/action",
                               json={"os-extend": {"new_size": ROOM}})  # 1 + 1 + 2 > 3
            assert resp.status_code == 202, resp.text
            assert (show(client, vid)["status"], show(client, vid)["size"]) == ("available", 1)
            resp = client.post(f"{V3}/volumes/{vid}/action",
                               json={"os-extend": {"new_size": 2}})
            assert resp.status_code == 202, resp.text
            assert (show(client, vid)["status"], show(client, vid)["size"]) == ("extending", 2)
            assert node.wanted()[vid]["size_gb"] == 2
            assert quota_used(client, project) == used + 2  # the volume's 2 and its snapshot
            node.converge()
        finally:
            cloud.openstack("volume", "service", "set", "--enable", host, "cinder-volume")
            purge(cloud, node, [vid])


def test_a_storage_node_with_volumes_is_not_removed_silently(
        cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> None:
    doomed = StorageNode(cloud, tmp_path_factory.mktemp("vol-remove"), "vrm", free_gb=10)
    doomed.keep_beating()
    host = f"{doomed.name}@atwill"
    others = [h for h, s in _volume_services(cloud).items()
              if s["Status"] == "enabled" and h != host]
    vid = None
    try:
        for other in others:  # the volume goes to this node
            cloud.openstack("volume", "service", "set", "--disable", other, "cinder-volume")
        with cloud.http(cloud.token()) as client:
            vid = client.post(f"{V3}/volumes", json={"volume": {"size": 1}}).json()[
                "volume"]["id"]
            doomed.converge()
            snap = client.post(f"{V3}/snapshots", json={"snapshot": {"volume_id": vid}})
            assert snap.status_code == 202, snap.text
            sid = snap.json()["snapshot"]["id"]
            doomed.converge()

            # Refused, saying what it holds and what to do; nothing changed.
            refused = cloud.atwill("node", "remove", doomed.name, check=False)
            assert refused.returncode == 1
            said = " ".join((refused.stdout + refused.stderr).split())
            assert "still holds 1 volume(s) and 1 snapshot(s)" in said, said
            assert "--force" in said and "openstack image create --volume" in said
            # atwill leave (the node's own call) too, with an error type no drain answers.
            with doomed.http() as node_client:
                left = node_client.post(f"/cluster/v1/nodes/{doomed.id}/leave",
                                        params={"force": False})
            assert left.status_code == 409, left.text
            assert left.json()["error"]["type"] == "node_holds_volumes"
            assert show(client, vid)["status"] == "available"
            assert vid in doomed.wanted()

            # --force: kept, in error with the reason, on no node; deletable at once.
            doomed.stop_beating()
            forced = cloud.atwill("node", "remove", doomed.name, "--force", check=False)
            assert forced.returncode == 0, forced.stderr
            after = show(client, vid)
            assert after["status"] == "error"
            snapshot = client.get(f"{V3}/snapshots/{sid}").json()["snapshot"]
            assert snapshot["status"] == "error"
            assert client.delete(f"{V3}/snapshots/{sid}").status_code == 202
            assert client.get(f"{V3}/snapshots/{sid}").status_code == 404
            assert client.delete(f"{V3}/volumes/{vid}").status_code == 202
            assert client.get(f"{V3}/volumes/{vid}").status_code == 404
            vid = None
    finally:
        for other in others:
            cloud.openstack("volume", "service", "set", "--enable", other, "cinder-volume")
        if vid is not None:
            purge(cloud, doomed, [vid])
        doomed.remove()


def _volume_services(cloud: Cloud) -> dict[str, dict]:
    rows = cloud.openstack("volume", "service", "list", "--long", "-f", "json")
    return {r["Host"]: r for r in rows if r["Binary"] == "cinder-volume"}


def test_a_down_storage_node_with_volumes_is_not_replaced_by_a_join(
        cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> None:
    import json

    from atwill.pki import make_key_and_csr
    from tests.api.aggregate_nodes import wait_for

    old = StorageNode(cloud, tmp_path_factory.mktemp("vol-rejoin"), "vrj", free_gb=10)
    host = f"{old.name}@atwill"
    others = [h for h, s in _volume_services(cloud).items()
              if s["Status"] == "enabled" and h != host]
    try:
        for other in others:
            cloud.openstack("volume", "service", "set", "--disable", other, "cinder-volume")
        with cloud.http(cloud.token()) as client:
            vid = client.post(f"{V3}/volumes", json={"volume": {"size": 1}}).json()[
                "volume"]["id"]
        assert vid in old.wanted()
        old.converge()
        wait_for(lambda: _volume_services(cloud)[host]["State"] == "down", 60,
                 "the silent storage node down")
        _, csr = make_key_and_csr(old.name)
        join_token = json.loads(cloud.atwill("token", "create", "--json").stdout)["token"]
        with cloud.http() as client:
            resp = client.post("/cluster/v1/join", json={
                "token": join_token, "name": old.name, "csr": csr.decode(),
                "inventory": {}})
        assert resp.status_code == 409, resp.text
        assert "still holds 1 volume(s) and 0 snapshot(s)" in resp.text
        with cloud.http(cloud.token()) as client:
            assert show(client, vid)["status"] == "available"
        cloud.atwill("node", "remove", old.name, "--force")
        with cloud.http(cloud.token()) as client:
            assert show(client, vid)["status"] == "error"
            assert client.delete(f"{V3}/volumes/{vid}").status_code == 202
            assert client.get(f"{V3}/volumes/{vid}").status_code == 404
    finally:
        for other in others:
            cloud.openstack("volume", "service", "set", "--enable", other, "cinder-volume")
        old.remove()
