"""os-volume_upload_image through the real CLI (`openstack image create --volume`): the
volume goes uploading, its storage node uploads the copy, the image becomes active and
the volume available again; Cinder's refusals (in-use without force, not available,
bad fields) change nothing; a node's failure puts the volume back and deletes the image;
force-deleting an uploading volume deletes its unfinished image, before or during the copy."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.api.aggregate_nodes import wait_for
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, unique

V3 = "/volume/v3"
DATA = b"\x00volume-bytes\xff" * 4096


@pytest.fixture(scope="module")
def storage(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageNode]:
    node = StorageNode(cloud, tmp_path_factory.mktemp("upload-nodes"), "upl", free_gb=20)
    node.keep_beating()
    try:
        yield node
    finally:
        node.remove()


@pytest.fixture
def volume(cloud: Cloud, storage: StorageNode) -> Iterator[str]:
    """An available 1 GiB volume; force-deleted (and gone from the node) afterwards."""
    vid = cloud.openstack("volume", "create", "--size", "1", unique("upvol"), "-f", "json")["id"]
    storage.converge()
    try:
        yield vid
    finally:
        with cloud.http(cloud.token()) as client:
            client.post(f"{V3}/volumes/{vid}/action", json={"os-force_delete": {}})
            storage.converge()
            assert client.get(f"{V3}/volumes/{vid}").status_code == 404


def status(cloud: Cloud, vid: str) -> str:
    return cloud.openstack("volume", "show", vid, "-f", "json")["status"]


def upload(storage: StorageNode, image_id: str, data: bytes = DATA) -> httpx.Response:
    with storage.http() as client:
        return client.put(f"/cluster/v1/nodes/{storage.id}/volume-uploads/{image_id}/file",
                          content=data, headers={"Content-Type": "application/octet-stream"})


def test_image_create_from_a_volume_with_the_cli(cloud: Cloud, storage: StorageNode,
                                                 volume: str) -> None:
    name = unique("fromvol")
    made = cloud.openstack("image", "create", "--volume", volume, name, "-f", "json")
    assert made["status"] == "uploading" and made["image_name"] == name
    assert (made["disk_format"], made["container_format"]) == ("raw", "bare")
    assert made["volume_type"] == "__DEFAULT__" and made["visibility"] == "private"
    image_id = made["image_id"]
    try:
        assert status(cloud, volume) == "uploading"
        assert storage.wanted()[volume]["source"]["upload"] == {
            "image_id": image_id, "disk_format": "raw", "then": "available"}
        queued = cloud.openstack("image", "show", image_id, "-f", "json")
        assert queued["status"] == "queued" and queued["min_disk"] == 1
        # Deleting an uploading volume is refused, as Cinder's state machine does.
        with cloud.http(cloud.token()) as client:
            assert client.delete(f"{V3}/volumes/{volume}").status_code == 400
        assert upload(storage, image_id).status_code == 204
        shown = cloud.openstack("image", "show", image_id, "-f", "json")
        assert shown["status"] == "active" and shown["size"] == len(DATA)
        assert shown["checksum"] == hashlib.md5(DATA).hexdigest()  # noqa: S324 - Glance's
        assert status(cloud, volume) == "available"
        assert storage.wanted()[volume]["source"] is None
        assert upload(storage, image_id).status_code == 404  # once only
    finally:
        cloud.openstack("image", "delete", image_id)


def test_refusals_change_nothing(cloud: Cloud, storage: StorageNode, volume: str) -> None:
    images = len(cloud.openstack("image", "list", "-f", "json"))
    with cloud.http(cloud.token()) as client:
        url = f"{V3}/volumes/{volume}/action"
        for body, words in (
                ({}, "image_name"),
                ({"image_name": "x", "disk_format": "iso"}, "disk_format"),
                ({"image_name": "x", "force": "perhaps"}, "force"),
                ({"image_name": "x", "surprise": 1}, "surprise")):
            resp = client.post(url, json={"os-volume_upload_image": body})
            assert resp.status_code == 400 and words in resp.text, resp.text
        resp = client.post(f"{V3}/volumes/{'0' * 32}/action",
                           json={"os-volume_upload_image": {"image_name": "x"}})
        assert resp.status_code == 404
        assert client.post(url, json={"os-reset_status": {"status": "in-use"}}
                           ).status_code == 202
        resp = client.post(url, json={"os-volume_upload_image": {"image_name": "x"}})
        assert resp.status_code == 400, resp.text
        assert resp.json()["badRequest"]["message"] == "Invalid volume: Volume status is in-use."
        # (error, not creating: the node's next report would make a creating one available)
        client.post(url, json={"os-reset_status": {"status": "error"}})
        resp = client.post(url, json={"os-volume_upload_image": {"image_name": "x"}})
        assert resp.status_code == 400 and "current status is: error" in resp.text
        client.post(url, json={"os-reset_status": {"status": "available"}})
    assert len(cloud.openstack("image", "list", "-f", "json")) == images
    assert status(cloud, volume) == "available"


def test_a_forced_upload_that_fails_on_the_node(cloud: Cloud, storage: StorageNode,
                                                volume: str) -> None:
    with cloud.http(cloud.token()) as client:
        url = f"{V3}/volumes/{volume}/action"
        client.post(url, json={"os-reset_status": {"status": "in-use"}})
        resp = client.post(url, json={"os-volume_upload_image": {
            "image_name": unique("forced"), "force": True, "disk_format": "qcow2"}},
            headers={"OpenStack-API-Version": "volume 3.1"})
        assert resp.status_code == 202, resp.text
        image_id = resp.json()["os-volume_upload_image"]["image_id"]
        assert storage.wanted()[volume]["source"]["upload"]["then"] == "in-use"
        # Another node may not answer for it.
        other = StorageNode(cloud, storage.dir, "upo")
        try:
            with other.http() as node:
                refused = node.post(f"/cluster/v1/nodes/{other.id}/volume-uploads/"
                                    f"{image_id}/error", json={"message": "no"})
            assert refused.status_code == 403
        finally:
            other.remove()
        with storage.http() as node:
            failed = node.post(f"/cluster/v1/nodes/{storage.id}/volume-uploads/{image_id}/error",
                               json={"message": "qemu-img: disk read error"})
        assert failed.status_code == 204
        assert client.get(f"/image/v2/images/{image_id}").status_code == 404
        assert client.get(f"{V3}/volumes/{volume}").json()["volume"]["status"] == "in-use"
        client.post(url, json={"os-reset_status": {"status": "available"}})


def start_upload(cloud: Cloud, volume: str) -> str:
    made = cloud.openstack("image", "create", "--volume", volume, unique("gone"), "-f", "json")
    return made["image_id"]


def force_delete(cloud: Cloud, volume: str) -> None:
    with cloud.http(cloud.token()) as client:
        resp = client.post(f"{V3}/volumes/{volume}/action", json={"os-force_delete": {}})
    assert resp.status_code == 202, resp.text


def leftovers(cloud: Cloud, image_id: str) -> list[str]:
    store = cloud.state_dir / "images"
    return [p.name for p in store.iterdir() if image_id in p.name] if store.is_dir() else []


def test_force_delete_while_queued_deletes_the_image(cloud: Cloud, storage: StorageNode,
                                                     volume: str) -> None:
    image_id = start_upload(cloud, volume)
    force_delete(cloud, volume)
    with cloud.http(cloud.token()) as client:
        assert client.get(f"/image/v2/images/{image_id}").status_code == 404
        assert client.get(f"{V3}/volumes/{volume}").json()["volume"]["status"] == "deleting"
    assert volume not in storage.wanted()
    # The node's copy, arriving late, is refused and leaves nothing.
    assert upload(storage, image_id).status_code == 404
    # A refused upload's file is removed off the event loop, just after the answer.
    wait_for(lambda: leftovers(cloud, image_id) == [], 10, "no upload file left")


def test_force_delete_during_the_copy_discards_it(cloud: Cloud, storage: StorageNode,
                                                  volume: str) -> None:
    image_id = start_upload(cloud, volume)
    go_on, answer = threading.Event(), {}

    def body() -> Iterator[bytes]:
        yield DATA
        go_on.wait(30)
        yield DATA

    def send() -> None:
        with storage.http() as node:
            answer["resp"] = node.put(
                f"/cluster/v1/nodes/{storage.id}/volume-uploads/{image_id}/file",
                content=body(), headers={"Content-Type": "application/octet-stream"})

    sender = threading.Thread(target=send)
    sender.start()
    try:
        with cloud.http(cloud.token()) as client:
            wait_for(lambda: client.get(f"/image/v2/images/{image_id}").json().get("status")
                     == "saving", 30, "the copy to begin")
            force_delete(cloud, volume)
            assert client.get(f"/image/v2/images/{image_id}").status_code == 404
    finally:
        go_on.set()
        sender.join(60)
    assert answer["resp"].status_code == 409, answer["resp"].text
    # A refused upload's file is removed off the event loop, just after the answer.
    wait_for(lambda: leftovers(cloud, image_id) == [], 10, "no upload file left")
    with cloud.http(cloud.token()) as client:
        assert client.get(f"/image/v2/images/{image_id}").status_code == 404
