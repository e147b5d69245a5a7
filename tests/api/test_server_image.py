"""createImage: the API, the image record, the node's desired state, its upload and errors.

The nodes here are joined through the real join API but have no agent: the test
speaks for them with their client certificates (heartbeats, reports, uploads).
The snapshot itself, on a real VM, is tested in tests/host/test_snapshot.py.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from atwill.controller.db.compute import Node
from atwill.controller.db.session import Database
from tests.api.aggregate_nodes import JoinedNode
from tests.cloud import Cloud, unique
from tests.imagedata import qcow2_bytes

V = "/compute/v2.1"
INVENTORY = {"vcpus": 8, "memory_mb": 8192, "disk_gb": 50}


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


class FakeNode(JoinedNode):
    """A joined node in an availability zone of its own, kept up by background beats."""

    def __init__(self, cloud: Cloud, tmp: Path, zone: str) -> None:
        super().__init__(cloud, tmp, "snapnode", INVENTORY)
        db = Database(cloud.db_url())
        try:
            with db.session() as session:
                session.execute(update(Node).where(Node.id == self.id).values(
                    availability_zone=zone))
        finally:
            db.dispose()
        self.keep_beating()

    def desired(self, server_id: str) -> dict[str, Any]:
        with self.http() as client:
            state = client.get(f"/cluster/v1/nodes/{self.id}/desired",
                               params={"wait": 0}).json()
        return next(i for i in state["instances"] if i["id"] == server_id)

    def upload(self, image_id: str, data: bytes, node_id: str | None = None) -> httpx.Response:
        with self.http() as client:
            return client.put(f"/cluster/v1/nodes/{node_id or self.id}/snapshots/{image_id}",
                              content=data, headers={"Content-Type": "application/octet-stream"})

    def fail(self, image_id: str, message: str) -> httpx.Response:
        with self.http() as client:
            return client.post(f"/cluster/v1/nodes/{self.id}/snapshots/{image_id}/error",
                               json={"message": message})


@dataclass
class Env:
    cloud: Cloud
    node: FakeNode
    other: FakeNode
    zone: str
    flavor: str
    image: str
    user: str
    project_id: str

    def server(self, active: bool = True, zone: str | None = None) -> str:
        self.node.beat()
        made = self.cloud.openstack(
            "server", "create", "--flavor", self.flavor, "--image", self.image, "--no-network",
            "--availability-zone", zone or self.zone, unique("srv"), "-f", "json",
            user=self.user)
        if active:
            self.node.beat({made["id"]: {"state": "running"}})
            assert self.show(made["id"])["status"] == "ACTIVE"
        return made["id"]

    def show(self, server_id: str) -> dict[str, Any]:
        with self.cloud.http(self.cloud.token(self.user)) as client:
            return client.get(f"{V}/servers/{server_id}", headers=mv("2.96")).json()["server"]

    def create_image(self, server_id: str, body: Any, version: str = "2.45",
                     user: str | None = None) -> httpx.Response:
        with self.cloud.http(self.cloud.token(user or self.user)) as client:
            return client.post(f"{V}/servers/{server_id}/action", headers=mv(version),
                               json=body)

    def image_doc(self, image_id: str) -> httpx.Response:
        with self.cloud.http(self.cloud.token(self.user)) as client:
            return client.get(f"/image/v2/images/{image_id}")

    def events(self, server_id: str, action: str) -> list[dict[str, Any]]:
        with self.cloud.http(self.cloud.token()) as client:
            found = client.get(f"{V}/servers/{server_id}/os-instance-actions").json()
            request_id = next(a["request_id"] for a in found["instanceActions"]
                              if a["action"] == action)
            return client.get(f"{V}/servers/{server_id}/os-instance-actions/{request_id}",
                              headers=mv("2.84")).json()["instanceAction"]["events"]


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("snapshot-nodes")
    zone = unique("snapaz")
    nodes = [FakeNode(cloud, tmp, zone), FakeNode(cloud, tmp, unique("otheraz"))]
    data = tmp / "base.img"
    data.write_bytes(os.urandom(64 * 1024))
    flavor = unique("snapflv")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", "--min-ram", "32",
                            "--property", "os_distro=atwill", "--property",
                            "hw_disk_bus=virtio", unique("snapbase"), "-f", "json")["id"]
    project, user = unique("snapproj"), unique("snapuser")
    project_id = cloud.openstack("project", "create", project, "-f", "json")["id"]
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    cloud.openstack("quota", "set", "--instances", "50", project)
    try:
        yield Env(cloud, nodes[0], nodes[1], zone, flavor, image, user, project_id)
    finally:
        for node in nodes:
            node.remove()


def test_create_image_records_the_image_and_asks_the_node(env: Env) -> None:
    server = env.server()
    resp = env.create_image(server, {"createImage": {"name": "snap-1",
                                                     "metadata": {"purpose": "test"}}})
    assert resp.status_code == 202, resp.text
    image_id = resp.json()["image_id"]
    assert "location" not in resp.headers
    image = env.image_doc(image_id).json()
    assert {k: image[k] for k in ("name", "status", "visibility", "owner", "disk_format",
                                  "container_format", "min_disk", "min_ram")} == {
        "name": "snap-1", "status": "queued", "visibility": "private",
        "owner": env.project_id, "disk_format": "qcow2", "container_format": "bare",
        "min_disk": 1, "min_ram": 32}
    assert image["image_type"] == "snapshot" and image["instance_uuid"] == server
    assert image["base_image_ref"] == env.image and image["purpose"] == "test"
    assert image["owner_user_name"] == env.user and image["user_id"]
    assert image["os_distro"] == "atwill" and image["hw_disk_bus"] == "virtio"
    assert not [k for k in image if k.startswith("owner_specified.")]
    shown = env.show(server)
    assert shown["OS-EXT-STS:task_state"] == "image_snapshot" and shown["status"] == "ACTIVE"
    assert env.node.desired(server)["snapshot"] == {"image_id": image_id}
    # A report of the running VM does not end the snapshot; only the upload does.
    env.node.beat({server: {"state": "running"}})
    assert env.show(server)["OS-EXT-STS:task_state"] == "image_snapshot"
    again = env.create_image(server, {"createImage": {"name": "snap-2"}})
    assert again.status_code == 409 and "task_state image_snapshot" in again.text


def test_upload_stores_the_data_and_ends_the_task(env: Env) -> None:
    server = env.server()
    image_id = env.create_image(server, {"createImage": {"name": "snap"}}).json()["image_id"]
    # Larger than the 1 MiB JSON body limit: snapshot data is streamed like image data.
    data = qcow2_bytes(3 * 1024 * 1024)
    refused = env.other.upload(image_id, data)
    assert refused.status_code == 403 and "another node" in refused.text
    assert env.other.upload(image_id, data, node_id=env.node.id).status_code == 403
    resp = env.node.upload(image_id, data)
    assert resp.status_code == 204, resp.text
    image = env.image_doc(image_id).json()
    assert image["status"] == "active" and image["size"] == len(data)
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    assert image["os_hash_algo"] == "sha512"
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
    with env.cloud.http(env.cloud.token(env.user)) as client:
        assert client.get(f"/image/v2/images/{image_id}/file").content == data
    assert env.show(server)["OS-EXT-STS:task_state"] is None
    assert env.node.desired(server)["snapshot"] is None
    events = env.events(server, "createImage")
    assert [(e["event"], e["result"]) for e in events] == [
        ("compute_snapshot_instance", "Success")]
    assert env.node.upload(image_id, data).status_code == 404  # no longer pending


def test_location_below_2_45_and_the_error_path(env: Env) -> None:
    server = env.server()
    resp = env.create_image(server, {"createImage": {"name": "old-style"}}, version="2.44")
    assert resp.status_code == 202 and resp.content == b""
    image_id = resp.headers["location"].rsplit("/", 1)[1]
    assert resp.headers["location"].endswith(f"/image/v2/images/{image_id}")
    assert env.image_doc(image_id).json()["status"] == "queued"
    assert env.other.fail(image_id, "not mine").status_code == 403
    assert env.node.fail(image_id, "qemu-img convert exited 1: no space").status_code == 204
    assert env.image_doc(image_id).status_code == 404
    assert env.show(server)["OS-EXT-STS:task_state"] is None
    events = env.events(server, "createImage")
    assert [(e["event"], e["result"]) for e in events] == [
        ("compute_snapshot_instance", "Error")]
    assert "no space" in events[0]["details"]
    assert env.node.fail(image_id, "again").status_code == 404
    assert env.node.upload(image_id, b"x").status_code == 404


def test_openstack_cli_waits_for_the_upload(env: Env) -> None:
    server = env.server()
    name = unique("cli-snap")
    out: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: out.update(env.cloud.openstack(
        "server", "image", "create", "--name", name, "--wait", server, "-f", "json",
        user=env.user)))
    waiter.start()
    try:
        pending = _wait_for(lambda: env.node.desired(server)["snapshot"])
        data = qcow2_bytes(1024)
        assert env.node.upload(pending["image_id"], data).status_code == 204
    finally:
        waiter.join(120)
    assert out["name"] == name and out["status"] == "active" and out["id"] == pending[
        "image_id"]


def test_deleting_the_server_drops_its_unfinished_snapshot(env: Env) -> None:
    server = env.server()
    image_id = env.create_image(server, {"createImage": {"name": "gone"}}).json()["image_id"]
    env.cloud.openstack("server", "delete", server, user=env.user)
    assert env.image_doc(image_id).status_code == 404
    assert env.node.upload(image_id, b"late").status_code == 404


BAD = [
    ({"createImage": {}}, 400, "'name'"),
    ({"createImage": {"name": 5}}, 400, "'name'"),
    ({"createImage": {"name": ""}}, 400, "'name'"),
    ({"createImage": {"name": " padded"}}, 400, "'name'"),
    ({"createImage": {"name": "x" * 256}}, 400, "'name'"),
    ({"createImage": "snap"}, 400, "createImage"),
    ({"createImage": {"name": "x", "colour": "blue"}}, 400, "colour"),
    ({"createImage": {"name": "x", "metadata": "a=b"}}, 400, "metadata"),
    ({"createImage": {"name": "x", "metadata": {"a": 1}}}, 400, "metadata"),
    ({"createImage": {"name": "x", "metadata": {"bad/key": "v"}}}, 400, "metadata"),
    ({"createImage": {"name": "x", "metadata": {"visibility": "public"}}}, 400, "attribute"),
    ({"createImage": {"name": "x", "metadata": {"status": "active"}}}, 400, "attribute"),
    ({"createImage": {"name": "x", "metadata": {"os_glance_x": "1"}}}, 400, "reserved"),
    ({"createImage": {"name": "x"}, "os-stop": None}, 400, "exactly one"),
]


@pytest.fixture(scope="module")
def idle(env: Env) -> str:
    """An ACTIVE server that bad requests must leave as it is."""
    return env.server()


@pytest.mark.parametrize("body, status, text", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_bodies_change_nothing(env: Env, idle: str, body: Any, status: int,
                                   text: str) -> None:
    server = idle
    before = _rows(env.cloud)
    resp = env.create_image(server, body)
    assert resp.status_code == status and text in resp.text, resp.text
    assert "Traceback" not in resp.text
    assert _rows(env.cloud) == before


def test_wrong_states_and_projects_change_nothing(env: Env, idle: str) -> None:
    building = env.server(active=False)
    failed = env.server(active=False)
    # Its only node fails the build: no other node in the zone takes the retry (ERROR).
    env.node.beat({failed: {"state": "error", "error": "the build failed"}})
    active = idle
    other = unique("snapother")
    env.cloud.openstack("project", "create", other)
    env.cloud.openstack("user", "create", "--password", "pw-" + other, other)
    env.cloud.openstack("role", "add", "--project", other, "--user", other, "member")
    env.cloud.add_user(other, "pw-" + other, other)
    body = {"createImage": {"name": "x"}}
    before = _rows(env.cloud)
    resp = env.create_image(building, body)
    assert resp.status_code == 409 and "vm_state building" in resp.text, resp.text
    resp = env.create_image(failed, body)
    assert resp.status_code == 409 and "vm_state error" in resp.text, resp.text
    assert env.create_image(active, body, user=other).status_code == 404
    assert _rows(env.cloud) == before


def _rows(cloud: Cloud) -> dict[str, list[tuple]]:
    # Nodes change on their own (heartbeats, the monitor marking them down), and so do the
    # HA monitor's records of a silent node: its events (ha_*) and the revision it bumps.
    rows = {k: v for k, v in cloud.db_snapshot().items()
            if k not in ("nodes", "cluster_revision", "fence_events")}
    for table, mark in (("instance_action_events", "ha_"), ("instance_actions", "req-ha-")):
        rows[table] = [row for row in rows.get(table, []) if not any(
            isinstance(value, str) and value.startswith(mark) for value in row)]
    return rows


def _wait_for(get: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = get()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_a_node_refusing_the_build_is_named_in_the_fault(env: Env) -> None:
    # The zone has one node: the retry finds no other, and the fault must still say why
    # the node refused (an unsafe image, say), not only "No valid host was found".
    server_id = env.server(active=False)
    env.node.beat({server_id: {"state": "error",
                               "error": "UnsafeImageError: image refused on this node"}})
    shown = env.show(server_id)
    assert shown["status"] == "ERROR"
    assert "No valid host was found" in shown["fault"]["message"]
    assert "UnsafeImageError: image refused on this node" in shown["fault"]["message"]
    assert env.node.name in shown["fault"]["message"]
