"""Cinder's attachments API (3.27+, complete at 3.44): reserve, connect to a compute node
(the storage node is asked to export there), connection_info from its report, complete,
detach (the export is revoked, detaching until the node says so)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.aggregate_nodes import JoinedNode
from tests.api.test_volume_api import V3, gone, mv, rows, show
from tests.api.test_volume_snapshots import available_volume
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, CommandFailed

A = f"{V3}/attachments"


@pytest.fixture(scope="module")
def nodes(cloud: Cloud,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StorageNode, JoinedNode]]:
    tmp = tmp_path_factory.mktemp("att-nodes")
    storage = StorageNode(cloud, tmp, prefix="attstor")
    compute = JoinedNode(cloud, tmp, "attcomp")
    storage.keep_beating()
    compute.keep_beating()
    try:
        yield storage, compute
    finally:
        storage.remove()
        compute.remove()


def test_attach_connect_complete_detach(cloud: Cloud,
                                        nodes: tuple[StorageNode, JoinedNode]) -> None:
    storage, compute = nodes
    vid = available_volume(cloud, storage)
    try:
        with cloud.http(cloud.token()) as client:
            old = client.post(A, json={"attachment": {"volume_uuid": vid}}, headers=mv("3.26"))
            assert old.status_code == 404
            # An admin's attachment without a server (a member's needs one of its own:
            # tests/api/test_server_volumes.py).
            made = client.post(A, json={"attachment": {"volume_uuid": vid}},
                               headers=mv("3.27"))
            assert made.status_code == 200, made.text
            att = made.json()["attachment"]
            assert (att["status"], att["instance"], att["connection_info"]) == (
                "reserved", None, None)
            assert show(cloud, vid)["status"] == "reserved"
            assert storage.wanted()[vid]["exports"] == []
            connector = {"host": compute.name, "platform": "x86_64"}
            put = client.put(f"{A}/{att['id']}", json={"attachment": {"connector": connector}},
                             headers=mv("3.44"))
            assert put.status_code == 200, put.text
            info = put.json()["attachment"]["connection_info"]
            assert info["driver_volume_type"] == "nbd" and info["data"]["ready"] is False
            assert storage.export_targets(vid) == [(compute.id, compute.name, 1)]
            storage.converge(host="10.99.0.5")
            detail = client.get(f"{A}/{att['id']}", headers=mv("3.44")).json()["attachment"]
            data = detail["connection_info"]["data"]
            assert (data["host"], data["port"], data["export"]) == ("10.99.0.5", 10809, vid)
            assert detail["attach_mode"] == "rw"
            done = client.post(f"{A}/{att['id']}/action", json={"os-complete": {}},
                               headers=mv("3.44"))
            assert done.status_code == 204
            shown = show(cloud, vid)
            assert shown["status"] == "in-use"
            assert shown["attachments"][0]["server_id"] is None
            assert shown["attachments"][0]["host_name"] == compute.name
            listed = client.get(A, headers=mv("3.44"), params={"volume_id": vid}).json()
            assert [a["id"] for a in listed["attachments"]] == [att["id"]]
            with pytest.raises(CommandFailed, match="attached"):
                cloud.openstack("volume", "delete", vid)
            left = client.delete(f"{A}/{att['id']}", headers=mv("3.44"))
            assert left.status_code == 200 and left.json() == {"attachments": []}
            assert show(cloud, vid)["status"] == "detaching"
            assert storage.wanted()[vid]["exports"] == []
            storage.converge()
            assert show(cloud, vid)["status"] == "available"
    finally:
        gone(cloud, storage, vid)


def test_bad_attachments_change_nothing(cloud: Cloud,
                                        nodes: tuple[StorageNode, JoinedNode]) -> None:
    storage, _compute = nodes
    vid = available_volume(cloud, storage)
    try:
        cloud.openstack("volume", "set", "--read-only", vid)
        before = rows(cloud)
        with cloud.http(cloud.token()) as client:
            for body, status in (
                    ({"volume_uuid": vid, "connector": {"host": "no-such-node"}}, 400),
                    ({"volume_uuid": vid, "mode": "rw"}, 400),
                    ({"volume_uuid": vid, "mode": "xx"}, 400),
                    ({"volume_uuid": "nope"}, 404), ({}, 400)):
                resp = client.post(A, json={"attachment": body}, headers=mv("3.54"))
                assert resp.status_code == status, (body, resp.text)
            for method, path in (("PUT", f"{A}/nope"), ("DELETE", f"{A}/nope"),
                                 ("GET", f"{A}/nope")):
                resp = client.request(method, path, headers=mv("3.44"),
                                      json={"attachment": {"connector": {"host": "x"}}}
                                      if method == "PUT" else None)
                assert resp.status_code == 404, (method, resp.text)
        assert rows(cloud) == before
        with cloud.http(cloud.token()) as client:
            ro = client.post(A, json={"attachment": {"volume_uuid": vid, "mode": "ro"}},
                             headers=mv("3.54"))
            assert ro.status_code == 200 and ro.json()["attachment"]["attach_mode"] == "ro"
            assert client.delete(f"{A}/{ro.json()['attachment']['id']}",
                                 headers=mv("3.54")).status_code == 200
        assert show(cloud, vid)["status"] == "available"
    finally:
        gone(cloud, storage, vid)


def test_an_attachment_of_a_volume_in_another_state_is_not_connected(
        cloud: Cloud, nodes: tuple[StorageNode, JoinedNode]) -> None:
    """PUT checks the volume's status as a reserve does: a reserved attachment of a volume
    an admin set to error is not connected (its status was overwritten with attaching)."""
    storage, compute = nodes
    vid = available_volume(cloud, storage)
    try:
        with cloud.http(cloud.token()) as client:
            made = client.post(A, json={"attachment": {"volume_uuid": vid}},
                               headers=mv("3.44"))
            att = made.json()["attachment"]
            reset = client.post(f"{V3}/volumes/{vid}/action",
                                json={"os-reset_status": {"status": "error"}},
                                headers=mv("3.44"))
            assert reset.status_code == 202, reset.text
            before = rows(cloud)
            put = client.put(f"{A}/{att['id']}", headers=mv("3.44"), json={
                "attachment": {"connector": {"host": compute.name}}})
            assert put.status_code == 400, put.text
            assert "current status is error" in put.json()["badRequest"]["message"]
            assert rows(cloud) == before
            assert storage.wanted()[vid]["exports"] == []
            assert client.delete(f"{A}/{att['id']}", headers=mv("3.44")).status_code == 200
            client.post(f"{V3}/volumes/{vid}/action",
                        json={"os-reset_status": {"status": "available"}}, headers=mv("3.44"))
    finally:
        gone(cloud, storage, vid)


def test_a_removed_node_is_exported_nothing(cloud: Cloud,
                                            nodes: tuple[StorageNode, JoinedNode],
                                            tmp_path: Path) -> None:
    """Review finding: the export outlived its node; a node joining under the removed
    node's name (another id) must not inherit it either."""
    storage, _compute = nodes
    leaving = JoinedNode(cloud, tmp_path, "attgone")
    vid = available_volume(cloud, storage)
    try:
        with cloud.http(cloud.token()) as client:
            made = client.post(A, json={"attachment": {
                "volume_uuid": vid, "connector": {"host": leaving.name}}}, headers=mv("3.44"))
            assert made.status_code == 200, made.text
            assert storage.export_targets(vid) == [(leaving.id, leaving.name, 1)]
            leaving.remove()
            assert storage.wanted()[vid]["exports"] == []
            client.delete(f"{A}/{made.json()['attachment']['id']}", headers=mv("3.44"))
            storage.converge()
    finally:
        leaving.remove()
        gone(cloud, storage, vid)
