"""Volume snapshots and volumes made from a snapshot, a volume or an image: the real CLI,
the API, and what the storage node is asked to build (its desired state's `source`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_volume_api import V3, gone, rows, show
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, CommandFailed, unique
from tests.imagedata import qcow2_bytes


@pytest.fixture(scope="module")
def storage(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageNode]:
    node = StorageNode(cloud, tmp_path_factory.mktemp("snap-nodes"), prefix="snapstor",
                       free_gb=30)
    node.keep_beating()
    try:
        yield node
    finally:
        node.remove()


def available_volume(cloud: Cloud, node: StorageNode, size: int = 1) -> str:
    vid = cloud.openstack("volume", "create", "--size", str(size), unique("sv"), "-f",
                          "json")["id"]
    node.converge()
    assert show(cloud, vid)["status"] == "available"
    return vid


def test_snapshot_lifecycle_and_delete_rules(cloud: Cloud, storage: StorageNode) -> None:
    vid = available_volume(cloud, storage)
    name = unique("snap")
    try:
        snap = cloud.openstack("volume", "snapshot", "create", "--volume", vid,
                               "--property", "k=v", name, "-f", "json")
        assert snap["status"] == "creating" and snap["volume_id"] == vid
        assert storage.wanted()[vid]["snapshots"] == [snap["id"]]
        storage.converge()
        shown = cloud.openstack("volume", "snapshot", "show", name, "-f", "json")
        assert shown["status"] == "available" and shown["size"] == 1
        cloud.openstack("volume", "snapshot", "set", "--description", "kept", name)
        assert cloud.openstack("volume", "snapshot", "show", name, "-f", "json")[
            "description"] == "kept"
        listed = cloud.openstack("volume", "snapshot", "list", "-f", "json")
        assert snap["id"] in [s["ID"] for s in listed]
        before = rows(cloud)
        with pytest.raises(CommandFailed, match="must not .* have snapshots"):
            cloud.openstack("volume", "delete", vid)
        with cloud.http(cloud.token()) as client:
            busy = client.post(f"{V3}/snapshots", json={"snapshot": {"volume_id": "nope"}})
            assert busy.status_code == 404
        assert rows(cloud) == before
        cloud.openstack("volume", "snapshot", "delete", name)
        assert storage.wanted()[vid]["snapshots"] == []
        storage.converge()
        with cloud.http(cloud.token()) as client:
            assert client.get(f"{V3}/snapshots/{snap['id']}").status_code == 404
        # With a snapshot again, cascade deletes both.
        again = cloud.openstack("volume", "snapshot", "create", "--volume", vid, unique("s"),
                                "-f", "json")
        storage.converge()
        with cloud.http(cloud.token()) as client:
            assert client.delete(f"{V3}/volumes/{vid}?cascade=true").status_code == 202
            assert client.get(f"{V3}/snapshots/{again['id']}").json()["snapshot"][
                "status"] == "deleting"
    finally:
        gone(cloud, storage, vid)
    with cloud.http(cloud.token()) as client:
        assert client.get(f"{V3}/snapshots/{again['id']}").status_code == 404


def test_volume_from_snapshot_and_clone(cloud: Cloud, storage: StorageNode) -> None:
    vid = available_volume(cloud, storage, size=2)
    made: list[str] = []
    try:
        cloud.openstack("volume", "set", "--bootable", vid)
        snap = cloud.openstack("volume", "snapshot", "create", "--volume", vid, unique("s"),
                               "-f", "json")
        storage.converge()
        with cloud.http(cloud.token()) as client:
            small = client.post(f"{V3}/volumes", json={"volume": {
                "size": 1, "snapshot_id": snap["id"]}})
            assert small.status_code == 400 and "smaller than the snapshot" in small.text
        restored = cloud.openstack("volume", "create", "--snapshot", snap["id"],
                                   unique("fromsnap"), "-f", "json")
        made.append(restored["id"])
        clone = cloud.openstack("volume", "create", "--source", vid, "--size", "3",
                                unique("clone"), "-f", "json")
        made.append(clone["id"])
        wanted = storage.wanted()
        assert wanted[restored["id"]]["source"] == {"type": "snapshot", "id": snap["id"]}
        assert wanted[restored["id"]]["size_gb"] == 2
        assert wanted[clone["id"]]["source"] == {"type": "volume", "id": vid}
        storage.converge()
        shown = show(cloud, restored["id"])
        assert shown["status"] == "available" and shown["bootable"] is True
        assert shown["snapshot_id"] == snap["id"]
        assert show(cloud, clone["id"])["source_volid"] == vid
        cloud.openstack("volume", "snapshot", "delete", snap["id"])
        storage.converge()
    finally:
        for ident in [*made, vid]:
            gone(cloud, storage, ident)


def test_volume_from_image(cloud: Cloud, storage: StorageNode, tmp_path: Path) -> None:
    data = tmp_path / "disk.qcow2"
    data.write_bytes(qcow2_bytes(64 * 1024))
    image = cloud.openstack("image", "create", "--disk-format", "qcow2", "--file", str(data),
                            unique("volimg"), "-f", "json")
    try:
        vol = cloud.openstack("volume", "create", "--image", image["id"], "--size", "1",
                              unique("fromimg"), "-f", "json")
        try:
            source = storage.wanted()[vol["id"]]["source"]
            assert source["type"] == "image" and source["id"] == image["id"]
            assert source["disk_format"] == "qcow2" and len(source["os_hash_value"]) == 128
            # The node may fetch the image its volume is built from.
            with storage.http() as client:
                got = client.get(f"/cluster/v1/nodes/{storage.id}/images/{image['id']}")
                assert got.status_code == 200 and got.content == data.read_bytes()
            storage.converge()
            shown = show(cloud, vol["id"])
            assert shown["bootable"] is True
            assert shown["volume_image_metadata"]["image_id"] == image["id"]
        finally:
            gone(cloud, storage, vol["id"])
    finally:
        cloud.openstack("image", "delete", image["id"])
