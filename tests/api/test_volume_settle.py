"""Nothing stays transitional once a node is gone (issue 12): a storage node judged down and
silent past volume_settle_after has its volumes creating/extending/deleting put in error
states with the reason, its upload ended (the image deleted, the volume back), its
attaching attachments rolled back, its detaching volume available, its snapshots in error;
no row is deleted. When it reports again after all, what was settled resumes and its
report settles it from facts. A compute node gone mid-attach has its attachment released.

Agent-less nodes (volume_nodes.StorageNode); "down for an hour" is written in the node's
row, as the HA monitor would have judged it (controller/volume/settle.py)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update

from atwill.controller.db.compute import Node
from atwill.controller.db.servers import Instance
from atwill.controller.db.session import Database
from atwill.controller.db.volume import Volume, VolumeAttachment, VolumeSnapshot
from tests.api.aggregate_nodes import JoinedNode, wait_for
from tests.api.lockout_cloud import own_cloud
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, unique

V3 = "/volume/v3"
A = f"{V3}/attachments"
AGG = "/compute/v2.1/os-aggregates"


SWEEP_S = 1.0  # this module's controller sweeps every second (5 s by default)


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"volume {version}"}


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    yield from own_cloud(engine, ha_auto_evacuate=False, volume_sweep_every=SWEEP_S)


def _down_for_an_hour(cloud: Cloud, node_id: str, fenced: bool = True) -> None:
    """Silent for an hour and judged down; fenced (its power confirmed off by its device)
    unless fenced is False: then only silent, maybe alive and cut off."""
    db = Database(cloud.db_url())
    try:
        with db.session() as session:
            hour_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
            fence = {"fence_state": "ok", "fence_method": "ipmi", "fenced_at": hour_ago} \
                if fenced else {"fence_state": "failed", "fence_method": None,
                                "fenced_at": None}
            session.execute(update(Node).where(Node.id == node_id).values(
                state="down", health="down", last_heartbeat=hour_ago,
                health_changed_at=hour_ago, **fence))
    finally:
        db.dispose()


def _errors(cloud: Cloud) -> dict[str, str | None]:
    db = Database(cloud.db_url())
    try:
        with db.session() as session:
            out = {v.id: v.error for v in session.scalars(select(Volume))}
            out.update({s.id: s.error for s in session.scalars(select(VolumeSnapshot))})
            return out
    finally:
        db.dispose()


def _status(client: httpx.Client, path: str) -> str | None:
    resp = client.get(path)
    if resp.status_code == 404:
        return None
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return (body.get("volume") or body.get("snapshot"))["status"]


def _create(client: httpx.Client) -> str:
    resp = client.post(f"{V3}/volumes", json={"volume": {"size": 1, "name": unique("st")}})
    assert resp.status_code == 202, resp.text
    return resp.json()["volume"]["id"]


def _act(client: httpx.Client, vid: str, body: dict[str, Any],
         headers: dict[str, str] | None = None) -> httpx.Response:
    resp = client.post(f"{V3}/volumes/{vid}/action", json=body, headers=headers)
    assert resp.status_code in (200, 202), resp.text
    return resp


def _purge(cloud: Cloud, node: StorageNode, others: list[JoinedNode],
           vids: list[str]) -> None:
    """Force-delete the volumes, remove the nodes (what is left is then on no node and
    goes at its next force-delete): no row is left."""
    node.stop_beating()
    for other in others:
        other.stop_beating()
    with cloud.http(cloud.token()) as client:
        for att in client.get(A, headers=mv("3.44")).json()["attachments"]:
            if att["volume_id"] in vids:
                client.delete(f"{A}/{att['id']}", headers=mv("3.44"))
        for vid in vids:
            client.post(f"{V3}/volumes/{vid}/action", json={"os-force_delete": {}})
        try:
            node.converge()
        except AssertionError:
            pass  # a failed test's node: its removal below orphans what is left
        node.remove()
        for other in others:
            other.remove()
        for vid in vids:
            client.post(f"{V3}/volumes/{vid}/action", json={"os-force_delete": {}})
            assert client.get(f"{V3}/volumes/{vid}").status_code == 404


def test_a_storage_node_gone_for_long_settles_and_resumes(cloud: Cloud,
                                                          tmp_path: Path) -> None:
    storage = StorageNode(cloud, tmp_path, "stgone")
    storage.keep_beating()
    compute = JoinedNode(cloud, tmp_path, "stcomp")
    compute.keep_beating()
    vids: list[str] = []
    try:
        with cloud.http(cloud.token()) as client:
            grow, drop, snapped, upload, attach, detach = (_create(client) for _ in range(6))
            vids += [grow, drop, snapped, upload, attach, detach]
            storage.converge()
            assert {_status(client, f"{V3}/volumes/{v}") for v in vids} == {"available"}
            connector = {"host": compute.name, "platform": "x86_64"}
            made = client.post(A, json={"attachment": {"volume_uuid": attach,
                                                       "connector": connector}},
                               headers=mv("3.44"))
            assert made.status_code == 200, made.text
            other = client.post(A, json={"attachment": {"volume_uuid": detach,
                                                        "connector": connector}},
                                headers=mv("3.44"))
            assert other.status_code == 200, other.text
            storage.converge()  # exported to the compute node
            done = client.post(f"{A}/{other.json()['attachment']['id']}/action",
                               json={"os-complete": {}}, headers=mv("3.44"))
            assert done.status_code == 204, done.text
            gone = client.delete(f"{A}/{other.json()['attachment']['id']}",
                                 headers=mv("3.44"))
            assert gone.status_code == 200, gone.text
            _act(client, grow, {"os-extend": {"new_size": 2}})
            assert client.delete(f"{V3}/volumes/{drop}").status_code == 202
            snap = client.post(f"{V3}/snapshots", json={"snapshot": {"volume_id": snapped}})
            assert snap.status_code == 202, snap.text
            snap_id = snap.json()["snapshot"]["id"]
            image_id = _act(client, upload, {"os-volume_upload_image": {
                "image_name": unique("up")}}).json()["os-volume_upload_image"]["image_id"]
            making = _create(client)
            vids.append(making)
            expected_before = {making: "creating", grow: "extending", drop: "deleting",
                               upload: "uploading", attach: "attaching",
                               detach: "detaching"}
            assert {v: _status(client, f"{V3}/volumes/{v}") for v in expected_before} \
                == expected_before
            assert _status(client, f"{V3}/snapshots/{snap_id}") == "creating"

            storage.stop_beating()
            _down_for_an_hour(cloud, storage.id)
            settled = {making: "error", grow: "error_extending", drop: "error_deleting",
                       upload: "available", attach: "available", detach: "available"}

            def now() -> dict[str, str | None]:
                return {v: _status(client, f"{V3}/volumes/{v}") for v in settled}
            wait_for(lambda: now() == settled, 30, "the gone node's volumes to settle")
            assert _status(client, f"{V3}/snapshots/{snap_id}") == "error"
            errors = _errors(cloud)
            for ident in (making, grow, drop, snap_id):
                assert f"The storage node {storage.name} was down for" in (errors[ident] or "")
            assert "while the volume was creating" in (errors[making] or "")
            assert client.get(f"/image/v2/images/{image_id}").status_code == 404
            listed = client.get(A, headers=mv("3.44")).json()["attachments"]
            assert [a for a in listed if a["volume_id"] in (attach, detach)] == []

            # It comes back: its report says what it holds, the rows resume and settle.
            wanted = storage.wanted()
            assert drop in wanted and making in wanted  # error_deleting is kept on disk
            storage.report({vid: {"state": "available", "size_gb": v["size_gb"],
                                  "snapshots": dict.fromkeys(v["snapshots"], "available"),
                                  "exports": {}}
                            for vid, v in wanted.items() if vid != drop})
            back = {making: "available", grow: "available", drop: None}
            assert {v: _status(client, f"{V3}/volumes/{v}") for v in back} == back
            assert _status(client, f"{V3}/snapshots/{snap_id}") == "available"
            assert client.get(f"{V3}/volumes/{grow}").json()["volume"]["size"] == 2
            assert _errors(cloud)[making] is None
    finally:
        _purge(cloud, storage, [compute], vids)


def _attaching(client: httpx.Client, storage: StorageNode, compute: JoinedNode,
               vids: list[str]) -> tuple[str, str]:
    """A volume made (its id added to vids) and attached through the attachments API to
    compute's host, still attaching: its id and the attachment's."""
    vid = _create(client)
    vids.append(vid)
    storage.converge()
    compute.beat()
    made = client.post(A, json={"attachment": {"volume_uuid": vid, "connector": {
        "host": compute.name, "platform": "x86_64"}}}, headers=mv("3.44"))
    assert made.status_code == 200, made.text
    return vid, str(made.json()["attachment"]["id"])


def test_a_compute_node_gone_mid_attach_releases_it(cloud: Cloud, tmp_path: Path) -> None:
    storage = StorageNode(cloud, tmp_path, "stkeep")
    storage.keep_beating()
    compute = JoinedNode(cloud, tmp_path, "stlost")
    vids: list[str] = []
    try:
        with cloud.http(cloud.token()) as client:
            vid, _ = _attaching(client, storage, compute, vids)
            assert _status(client, f"{V3}/volumes/{vid}") == "attaching"
            _down_for_an_hour(cloud, compute.id)
            wait_for(lambda: _status(client, f"{V3}/volumes/{vid}") == "available", 30,
                     "the attachment of a gone compute node to be released")
            listed = client.get(A, headers=mv("3.44")).json()["attachments"]
            assert [a for a in listed if a["volume_id"] == vid] == []
            assert storage.wanted()[vid]["exports"] == []
    finally:
        _purge(cloud, storage, [compute], vids)


def _aggregate(client: httpx.Client, host: str, policy: str) -> str:
    made = client.post(AGG, json={"aggregate": {"name": unique("stedge")}})
    assert made.status_code == 200, made.text
    agg = made.json()["aggregate"]["id"]
    for body in ({"add_host": {"host": host}},
                 {"set_metadata": {"metadata": {"ha_policy": policy}}}):
        resp = client.post(f"{AGG}/{agg}/action", json=body)
        assert resp.status_code == 200, resp.text
    return str(agg)


def _drop_aggregate(client: httpx.Client, agg: str, host: str) -> None:
    client.post(f"{AGG}/{agg}/action", json={"remove_host": {"host": host}})
    assert client.delete(f"{AGG}/{agg}").status_code == 200


def test_a_node_not_known_off_keeps_its_attachments(cloud: Cloud, tmp_path: Path) -> None:
    """Review HIGH 1: silence alone (a failed fence: maybe alive, cut off) or an
    autonomous zone releases nothing, however long; fenced in a zone that fences, it is
    released. Failed before: the attachment was released at the first sweep."""
    storage = StorageNode(cloud, tmp_path, "stcut")
    storage.keep_beating()
    compute = JoinedNode(cloud, tmp_path, "stedge")
    vids: list[str] = []
    agg: str | None = None
    try:
        with cloud.http(cloud.token()) as client:
            vid, _ = _attaching(client, storage, compute, vids)
            _down_for_an_hour(cloud, compute.id, fenced=False)
            time.sleep(2.5 * SWEEP_S)  # two sweeps at least
            assert _status(client, f"{V3}/volumes/{vid}") == "attaching"
            agg = _aggregate(client, compute.name, "autonomous")
            _down_for_an_hour(cloud, compute.id, fenced=True)  # an operator's confirm
            time.sleep(2.5 * SWEEP_S)
            assert _status(client, f"{V3}/volumes/{vid}") == "attaching"
            _drop_aggregate(client, agg, compute.name)
            agg = None
            wait_for(lambda: _status(client, f"{V3}/volumes/{vid}") == "available", 30,
                     "the attachment of a fenced compute node to be released")
    finally:
        if agg is not None:
            with cloud.http(cloud.token()) as client:
                _drop_aggregate(client, agg, compute.name)
        _purge(cloud, storage, [compute], vids)


def _as_boot_volume(cloud: Cloud, att_id: str, node: JoinedNode) -> str:
    """Make the attachment a BUILD server's root disk (as compute/server_volumes_state.add
    does for a boot from volume), its server written straight in the database."""
    db = Database(cloud.db_url())
    try:
        with db.session() as session:
            inst = Instance(name=unique("stboot"), project_id="p", user_id="u", vcpus=1,
                            memory_mb=64, disk_gb=0, vm_state="building",
                            task_state="block_device_mapping", node_id=node.id,
                            node_name=node.name)
            session.add(inst)
            session.flush()
            session.execute(update(VolumeAttachment).where(VolumeAttachment.id == att_id)
                            .values(instance_id=inst.id, boot_index=0,
                                    delete_on_termination=True))
            return inst.id
    finally:
        db.dispose()


def _drop_boot(cloud: Cloud, server: str, vid: str) -> None:
    db = Database(cloud.db_url())
    try:
        with db.session() as session:
            session.execute(delete(VolumeAttachment).where(
                VolumeAttachment.instance_id == server))
            session.execute(delete(Instance).where(Instance.id == server))
            session.execute(update(Volume).where(Volume.id == vid).values(
                status="available"))
    finally:
        db.dispose()


def test_a_boot_volume_of_a_fenced_compute_node_is_kept(cloud: Cloud,
                                                        tmp_path: Path) -> None:
    """Review HIGH 2: a BUILD server's boot attachment is never released by the sweep
    (the server would stay BUILD with no root disk, delete_on_termination lost): left to
    evacuation. Failed before: released, the volume available."""
    storage = StorageNode(cloud, tmp_path, "stbvol")
    storage.keep_beating()
    compute = JoinedNode(cloud, tmp_path, "stbnode")
    vids: list[str] = []
    server: str | None = None
    try:
        with cloud.http(cloud.token()) as client:
            vid, att = _attaching(client, storage, compute, vids)
            server = _as_boot_volume(cloud, att, compute)
            _down_for_an_hour(cloud, compute.id, fenced=True)
            time.sleep(2.5 * SWEEP_S)
            assert _status(client, f"{V3}/volumes/{vid}") == "attaching"
            listed = client.get(A, headers=mv("3.44")).json()["attachments"]
            assert [a["status"] for a in listed if a["volume_id"] == vid] == ["attaching"]
    finally:
        if server is not None:
            _drop_boot(cloud, server, vids[0])
        _purge(cloud, storage, [compute], vids)
