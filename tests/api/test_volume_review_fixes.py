"""Security review of volume-backed live migration and its neighbours, each finding's fix
through the API with agent-less nodes (the migrating agents and storage node of
test_live_migration_volumes.py):

1. the source of a live migration is given nothing from which the destination's key to
   a volume (the attachment's once the migration completes) can be computed;
2. a connector sent to /v3/attachments cannot set what the server sets in it (the TLS-PSK
   identity an export admits, the export the volume is plugged in with);
3. a server whose delete_on_termination volume is on a frozen storage node is deleted
   (the volume stays, detached), as Nova does;
4. a server still building on a volume of a storage node removed with --force fails
   instead of staying in BUILD.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from atwill.controller.db.models import Migration
from atwill.controller.db.session import Database
from atwill.controller.db.volume import VolumeAttachment
from tests.api.admin_api import show_server
from tests.api.aggregate_nodes import wait_for
from tests.api.lockout_cloud import own_cloud
from tests.api.test_live_migration_volumes import Env, volume_env
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, unique

V = "/compute/v2.1"
V3 = "/volume/v3"
CINDER = {"OpenStack-API-Version": "volume 3.54"}
NOVA = {"OpenStack-API-Version": "compute 2.79"}


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    yield from own_cloud(engine, ha_auto_evacuate=False)


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from volume_env(cloud, tmp_path_factory.mktemp("rf"), "rf", _drop_volume)


def _drop_volume(env: Env, vid: str) -> None:
    """Force-delete (any state), then the storage node reports it off its disk."""
    with env.cloud.http(env.cloud.token()) as client:
        client.post(f"{V3}/volumes/{vid}/action", json={"os-force_delete": {}})
    env.converge()


def _db(cloud: Cloud) -> Database:
    return Database(cloud.db_url())


def _migrations(cloud: Cloud, server: str) -> list[tuple[int, str, str | None, str | None]]:
    """(id, status, tls_key, volume_key) of the server's migrations, oldest first."""
    db = _db(cloud)
    try:
        with db.session() as session:
            return [(m.id, m.status, m.tls_key, m.volume_key)
                    for m in session.scalars(select(Migration).where(
                        Migration.instance_uuid == server).order_by(Migration.id))]
    finally:
        db.dispose()


def _attachment(cloud: Cloud, att_id: str) -> tuple[dict[str, Any], str | None]:
    """(connector, nbd_key) of an attachment row."""
    db = _db(cloud)
    try:
        with db.session() as session:
            att = session.get(VolumeAttachment, att_id)
            assert att is not None
            return dict(att.connector or {}), att.nbd_key
    finally:
        db.dispose()


def _set_connector(cloud: Cloud, att_id: str, connector: dict[str, Any]) -> None:
    db = _db(cloud)
    try:
        with db.session() as session:
            att = session.get(VolumeAttachment, att_id)
            assert att is not None
            att.connector = connector
    finally:
        db.dispose()


def _hmac(key: str, att: str) -> str:
    return hmac.new(key.encode(), att.encode(), hashlib.sha256).hexdigest()


def _identities(env: Env, vid: str) -> list[str]:
    return [line.split(":")[0] for _, lines in env.exports(vid) for line in lines]


def test_the_source_cannot_compute_the_destinations_key(env: Env, cloud: Cloud) -> None:
    """Review finding (HIGH): the destination's key was HMAC(migration TLS key,
    attachment id); the source is sent that TLS key and knows the attachment, so it
    could compute the key that is the attachment's once the migration completes, and go
    on reading and writing the volume after the server left it."""
    pair, a, b = env.pair, env.pair.a, env.pair.b
    server = pair.boot(a.name)
    vid = env.volume()
    cloud.openstack("server", "add", "volume", server, vid)
    env.settle(vid, "in-use")
    ((_, (before,)),) = env.exports(vid)
    att = before.split(":")[0].removeprefix("atwill-att-")
    pair.ending[server] = "running"
    cloud.openstack("server", "migrate", "--live-migration", "--host", b.name, server)
    env.converge()
    (on_b,) = wait_for(lambda: env.spec(b, server), 30, "b asked to receive")["volumes"]
    theirs = on_b["psk"]["key"]
    wait_for(lambda: _migrations(cloud, server)[0][1] == "running", 30, "running")
    orders = wait_for(lambda: [i["migrate_to"] for d in list(pair.agents[a.name].seen)
                               for i in d["instances"]
                               if i["id"] == server and "migrate_to" in i], 30, "a sends")
    sent_key = orders[-1]["tls"]["key"]
    ((mid, _, tls_key, volume_key),) = _migrations(cloud, server)
    assert sent_key == tls_key and volume_key and volume_key != tls_key
    # Not from anything the source holds: the migration's key, its id, the attachment.
    assert theirs != _hmac(tls_key, att)
    assert theirs == _hmac(volume_key, att)

    pair.ending[server] = "completed"
    pair.wait_server(server, b.name)
    assert _attachment(cloud, att)[1] == theirs  # the attachment's key from now on
    assert env.exports(vid) == [(b.id, [f"atwill-att-{att}-lm{mid}:{theirs}"])]
    given_a = json.dumps(list(pair.agents[a.name].seen))
    assert theirs not in given_a and volume_key not in given_a
    # Both secrets go with the migration's end.
    assert _migrations(cloud, server) == [(mid, "completed", None, None)]

    # A failed one drops them too (back to a, which the source b says failed).
    pair.ending[server] = "failed"
    cloud.openstack("server", "migrate", "--live-migration", "--host", a.name, server)
    env.converge()
    wait_for(lambda: _migrations(cloud, server)[-1][1] == "error", 30, "failed")
    assert _migrations(cloud, server)[-1][2:] == (None, None)
    assert env.exports(vid) == [(b.id, [f"atwill-att-{att}-lm{mid}:{theirs}"])]
    cloud.openstack("server", "delete", "--wait", server)
    env.settle(vid, "available")
    _drop_volume(env, vid)


def test_a_connector_cannot_set_what_the_server_sets(env: Env, cloud: Cloud) -> None:
    """Review finding: any key of a connector was kept, psk_identity too, which names the
    TLS-PSK identity the export admits: a member could rename it (the export restarted,
    the agents refusing it) or name another attachment's (shadowing its line)."""
    pair, a = env.pair, env.pair.a
    server = pair.boot(a.name)
    vid = env.volume()
    evil = {"host": a.name, "initiator": "iqn.2026-12.test:rf",
            "psk_identity": "atwill-att-evil",
            "export": {"node_id": a.id, "host": "203.0.113.9", "port": 1}}
    other = "atwill-att-00000000-0000-4000-8000-000000000000"
    kept = {"host": a.name, "initiator": "iqn.2026-12.test:rf"}
    # Made through this API: no Nova request began it (server-set, attach_outcomes).
    stored = {**kept, "attach_request": ""}
    with cloud.http(cloud.token()) as client:
        made = client.post(f"{V3}/attachments", headers=CINDER, json={"attachment": {
            "volume_uuid": vid, "instance_uuid": server, "connector": evil}})
        assert made.status_code == 200, made.text
        att = made.json()["attachment"]["id"]
        assert _identities(env, vid) == [f"atwill-att-{att}"]
        assert _attachment(cloud, att)[0] == stored
        for named in (other, f"atwill-att-{att}-lm7", "atwill-att-evil", "x"):
            resp = client.put(f"{V3}/attachments/{att}", headers=CINDER, json={
                "attachment": {"connector": {**evil, "psk_identity": named,
                                             "export": f"{named}"}}})
            assert resp.status_code == 200, resp.text
            assert _identities(env, vid) == [f"atwill-att-{att}"], named
            assert _attachment(cloud, att)[0] == stored, named
        # A row naming another attachment's identity (written before this fix) is not
        # believed either; one a live migration of this attachment gave it is.
        _set_connector(cloud, att, {**kept, "psk_identity": other})
        assert _identities(env, vid) == [f"atwill-att-{att}"]
        _set_connector(cloud, att, {**kept, "psk_identity": f"atwill-att-{att}-lm7"})
        assert _identities(env, vid) == [f"atwill-att-{att}-lm7"]
        # What the server set stays through a PUT (the connector's own keys change).
        resp = client.put(f"{V3}/attachments/{att}", headers=CINDER, json={
            "attachment": {"connector": {"host": a.name, "psk_identity": other}}})
        assert resp.status_code == 200, resp.text
        assert _attachment(cloud, att)[0] == {"host": a.name, "attach_request": "",
                                              "psk_identity": f"atwill-att-{att}-lm7"}
        assert client.delete(f"{V3}/attachments/{att}", headers=CINDER).status_code == 200
    cloud.openstack("server", "delete", "--wait", server)
    env.settle(vid, "available")
    _drop_volume(env, vid)


def _freeze(client: httpx.Client, env: Env, action: str) -> None:
    resp = client.put(f"{V3}/os-services/{action}", json={"host": f"{env.storage.name}@atwill"})
    assert resp.status_code == 200, resp.text


def test_a_server_is_deleted_though_its_volumes_backend_is_frozen(env: Env,
                                                                 cloud: Cloud) -> None:
    """Review finding: the server's DELETE answered the frozen backend's 400 and the server
    stayed. Nova deletes it and only logs the volume it could not delete: the volume is
    detached and stays, for its owner to delete once the backend is thawed."""
    pair, a = env.pair, env.pair.a
    server = pair.boot(a.name)
    vid = env.volume()
    with cloud.http(cloud.token()) as client:
        resp = client.post(f"{V}/servers/{server}/os-volume_attachments", headers=NOVA,
                           json={"volumeAttachment": {"volumeId": vid,
                                                      "delete_on_termination": True}})
        assert resp.status_code == 200, resp.text
        env.settle(vid, "in-use")
        _freeze(client, env, "freeze")
        try:
            deleted = client.delete(f"{V}/servers/{server}")
            assert deleted.status_code == 204, deleted.text
            wait_for(lambda: client.get(f"{V}/servers/{server}").status_code == 404, 30,
                     "server gone")
            env.settle(vid, "available")
            listed = client.get(f"{V3}/attachments", headers=CINDER,
                                params={"volume_id": vid}).json()["attachments"]
            assert listed == []
            # The backend is still frozen: the volume's delete is still refused.
            assert client.delete(f"{V3}/volumes/{vid}").status_code == 400
        finally:
            _freeze(client, env, "thaw")
            client.put(f"{V3}/os-services/enable", json={
                "host": f"{env.storage.name}@atwill", "binary": "cinder-volume"})
    _drop_volume(env, vid)


def test_a_build_on_a_removed_storage_nodes_volume_fails(env: Env, cloud: Cloud,
                                                         tmp_path: Path) -> None:
    """Review finding: `atwill node remove --force` of a storage node put its volumes in
    error, but a server waiting to boot from one stayed in BUILD for ever."""
    pair, a = env.pair, env.pair.a
    other = StorageNode(cloud, tmp_path, "rfgone", free_gb=1000)  # the roomiest: it takes it
    other.keep_beating()
    removed, server = False, None
    try:
        flavor = cloud.openstack("flavor", "show", f"{pair.image}-flavor", "-f", "json")["id"]
        with cloud.http(cloud.token()) as client:
            resp = client.post(f"{V}/servers", headers=NOVA, json={"server": {
                "name": unique("rfsrv"), "flavorRef": flavor, "networks": "none",
                "availability_zone": f"nova:{a.name}",
                "block_device_mapping_v2": [{
                    "boot_index": 0, "uuid": pair.image, "source_type": "image",
                    "destination_type": "volume", "volume_size": 1,
                    "delete_on_termination": True}]}})
            assert resp.status_code == 202, resp.text
            server = resp.json()["server"]["id"]
            (att,) = client.get(f"{V}/servers/{server}/os-volume_attachments").json()[
                "volumeAttachments"]
        assert att["volumeId"] in other.wanted()  # never made: the build waits for it
        assert show_server(cloud, server)["status"] == "BUILD"
        other.remove()
        removed = True
        shown = wait_for(lambda: (s := show_server(cloud, server))["status"] != "BUILD"
                         and s, 20, "the build ended")
        assert shown["status"] == "ERROR", shown
        assert att["volumeId"] in shown["fault"]["message"], shown
    finally:
        if not removed:
            other.remove()
        if server is not None:
            cloud.openstack("server", "delete", "--wait", server)
