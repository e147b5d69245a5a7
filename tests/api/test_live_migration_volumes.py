"""Live migration of a server with volumes (servers/live_migration_volumes.py): the
volume keeps its one export, which admits the destination's own key while the
migration runs; the destination is given the volume (same export, host and port) only
once the storage node says its export admits that key; on success the destination's key
is the attachment's and the source's is no longer admitted; on failure the destination's
goes and nothing else changed.

Agent-less nodes: the migrating agents of test_server_live_migration.py (which also
report the volumes they are given as attached) and a storage node without an agent
(volume_nodes.py) that reports its exports, with the identities they admit, when told.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from atwill.controller.db.session import Database
from atwill.controller.db.volume import VolumeAttachment
from tests.api.aggregate_nodes import JoinedNode, wait_for
from tests.api.lockout_cloud import own_cloud
from tests.api.test_server_live_migration import MigratingAgent, Pair, migrating_pair
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, unique

V = "/compute/v2.1"
HOST = "OS-EXT-SRV-ATTR:host"


class VolumeAgent(MigratingAgent):
    """A migrating agent that plugs in every volume it is given."""

    def _entry(self, inst: dict[str, Any]) -> dict[str, Any]:
        entry = super()._entry(inst)
        if inst.get("volumes") is not None:
            entry["volumes"] = {v["volume_id"]: "attached" for v in inst["volumes"]}
        booted = any(v.get("boot_index") == 0 for v in inst.get("volumes") or [])
        if booted and "nbd_port" in entry.get("incoming", {}):
            # No local disk: the real agent exports none (agent/live_migrations.py).
            entry["incoming"] = {"migration": inst["incoming"]["migration"], "port": 49152,
                                 "disk": False}
        return entry


class Env:
    def __init__(self, pair: Pair, storage: StorageNode) -> None:
        self.pair, self.storage, self.cloud = pair, storage, pair.cloud
        self.ports: dict[str, int] = {}

    def converge(self) -> None:
        """As the storage agent: one daemon (port) per volume, whichever node it serves
        (a hand-over keeps it), reported with the identities each export admits."""
        report = {}
        for vid, v in self.storage.wanted().items():
            port = self.ports.setdefault(vid, 10900 + len(self.ports))
            report[vid] = {"state": "available", "size_gb": v["size_gb"],
                           "snapshots": dict.fromkeys(v["snapshots"], "available"),
                           "exports": {e["node_id"]: {
                               "host": "10.99.0.5", "port": port,
                               "identities": sorted(k.split(":")[0] for k in e["psk"] or [])}
                               for e in v["exports"]}}
        self.storage.report(report)

    def volume(self) -> str:
        vid = self.cloud.openstack("volume", "create", "--size", "1", unique("lvvol"), "-f",
                                   "json")["id"]
        self.settle(vid, "available")
        return vid

    def status(self, vid: str) -> str:
        return str(self.cloud.openstack("volume", "show", vid, "-f", "json")["status"])

    def settle(self, vid: str, status: str) -> None:
        def done() -> bool:
            self.converge()
            return self.status(vid) == status
        wait_for(done, 30, f"{vid} {status}")

    def exports(self, vid: str) -> list[tuple[str, list[str]]]:
        return [(e["node_id"], sorted(e["psk"] or []))
                for e in self.storage.wanted()[vid]["exports"]]

    def spec(self, node: JoinedNode, server: str) -> dict[str, Any] | None:
        return next((i for i in self.pair.desired_of(node)["instances"]
                     if i["id"] == server), None)

    def given(self, node: JoinedNode) -> str:
        import json  # noqa: PLC0415
        return json.dumps(self.pair.desired_of(node))

    def migration(self, server: str) -> dict[str, Any]:
        (record,) = self.pair.migrations(server)
        return record


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    yield from own_cloud(engine, ha_auto_evacuate=False)


def volume_env(cloud: Cloud, tmp: Path, prefix: str, drop: Callable[[Env, str], None],
               zone: str | None = None) -> Iterator[Env]:
    """A storage node (in a zone of its own if named) and a migrating pair whose agents
    plug volumes; afterwards every server is deleted and every volume dropped by drop."""
    storage = StorageNode(cloud, tmp, f"{prefix}stor")
    if zone:
        storage.own_zone(zone)
    storage.keep_beating()
    try:
        with migrating_pair(cloud, tmp, f"{prefix}node") as pair:
            for agent in pair.agents.values():
                agent.stop()
            pair.agents = {n.name: VolumeAgent(n, pair.ending) for n in (pair.a, pair.b)}
            made = Env(pair, storage)
            try:
                yield made
            finally:
                for server in cloud.openstack("server", "list", "--all-projects", "-f",
                                              "json"):
                    cloud.openstack("server", "delete", "--wait", server["ID"])
                for vol in cloud.openstack("volume", "list", "--all-projects", "-f",
                                           "json"):
                    drop(made, vol["ID"])
    finally:
        storage.remove()


def _settle_and_delete(env: Env, vid: str) -> None:
    env.settle(vid, "available")
    env.cloud.openstack("volume", "delete", vid)


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from volume_env(cloud, tmp_path_factory.mktemp("lv"), "lv", _settle_and_delete,
                          zone="lvaz")


def _attached(env: Env, server: str) -> tuple[str, str]:
    """A new volume attached to server: (its id, the one key its export admits)."""
    vid = env.volume()
    env.cloud.openstack("server", "add", "volume", server, vid)
    env.settle(vid, "in-use")
    ((_, (key,)),) = env.exports(vid)
    return vid, key


def _both_admitted(env: Env, vid: str, source: JoinedNode, key: str,
                   migration: int) -> str:
    """The destination's line its export to the source admits besides key."""
    ((node, keys),) = env.exports(vid)
    assert node == source.id and key in keys and len(keys) == 2, keys
    (theirs,) = [k for k in keys if k != key]
    att = key.split(":")[0].removeprefix("atwill-att-")
    assert re.fullmatch(rf"atwill-att-{att}-lm{migration}:[0-9a-f]{{64}}", theirs), theirs
    return theirs


def _migrating(env: Env) -> tuple[str, str, str, dict[str, Any]]:
    """A server booted on a with a new volume attached, then told to live-migrate to b:
    (server, volume id, the key its export admitted, what a was given of the volume)."""
    a, b = env.pair.a, env.pair.b
    server = env.pair.boot(a.name)
    vid, before = _attached(env, server)
    (on_a,) = env.spec(a, server)["volumes"]
    env.pair.ending[server] = "running"  # the source sends until the test says
    env.cloud.openstack("server", "migrate", "--live-migration", "--host", b.name, server)
    return server, vid, before, on_a


def test_a_volume_is_reattached_on_the_destination_not_copied(env: Env) -> None:
    pair, a, b = env.pair, env.pair.a, env.pair.b
    server, vid, before, on_a = _migrating(env)
    record = env.migration(server)
    theirs = _both_admitted(env, vid, a, before, record["Id"])
    # The storage node has not said its export admits b: b is not asked to start yet.
    assert record["Status"] == "preparing" and env.spec(b, server) is None
    env.converge()
    incoming = wait_for(lambda: env.spec(b, server), 30, "b asked to receive")
    assert "incoming" in incoming
    (on_b,) = incoming["volumes"]
    # The same export, device and boot index; b's own key.
    assert {k: v for k, v in on_b.items() if k != "psk"} == \
        {k: v for k, v in on_a.items() if k != "psk"}
    assert f"{on_b['psk']['identity']}:{on_b['psk']['key']}" == theirs
    assert before.split(":")[1] not in env.given(b)
    wait_for(lambda: env.migration(server)["Status"] == "running", 30, "running")

    pair.ending[server] = "completed"
    pair.wait_server(server, b.name)
    # b's key is the attachment's, served by the same export (the one daemon handed over
    # to b); a's no longer admitted nor given to anyone.
    assert env.exports(vid) == [(b.id, [theirs])]
    (now,) = env.spec(b, server)["volumes"]
    assert now == on_b
    for node in (a, b, env.storage):
        assert before.split(":")[1] not in env.given(node)
    env.converge()  # the storage node reports the export handed over: nothing changes
    assert env.spec(b, server)["volumes"] == [on_b]
    assert env.status(vid) == "in-use"
    assert env.migration(server)["Status"] == "completed"


def test_a_failed_migration_drops_the_destinations_key(env: Env) -> None:
    pair, a, b = env.pair, env.pair.a, env.pair.b
    server, vid, before, on_a = _migrating(env)
    theirs = _both_admitted(env, vid, a, before, env.migration(server)["Id"])
    env.converge()
    wait_for(lambda: env.migration(server)["Status"] == "running", 30, "running")

    pair.ending[server] = "failed"
    wait_for(lambda: env.migration(server)["Status"] == "error", 30, "failed")
    assert env.exports(vid) == [(a.id, [before])]
    assert env.spec(a, server)["volumes"] == [on_a]
    assert theirs.split(":")[1] not in env.given(b) + env.given(env.storage)
    assert pair.show(server)[HOST] == a.name


def test_an_attachment_without_a_key_of_its_own_is_refused(env: Env) -> None:
    """One made before migration 0026 is served to the node's certificate: no second
    node can be admitted, so the API says so (400) and records nothing."""
    pair, a = env.pair, env.pair.a
    server = pair.boot(a.name)
    vid, _ = _attached(env, server)
    db = Database(env.cloud.db_url())
    try:
        with db.session() as session:
            session.execute(update(VolumeAttachment).where(
                VolumeAttachment.volume_id == vid).values(nbd_key=None))
    finally:
        db.dispose()
    with env.cloud.http(env.cloud.token()) as client:
        version = {"OpenStack-API-Version": "compute 2.30"}
        resp = client.post(f"{V}/servers/{server}/action", headers=version,
                           json={"os-migrateLive": {"host": None, "block_migration": "auto"}})
        assert resp.status_code == 400, resp.text
        assert "attached before attachments had keys of their own" in resp.text
        found = client.get(f"{V}/os-migrations", params={"instance_uuid": server},
                           headers=version).json()["migrations"]
    assert found == [] and pair.show(server)["status"] == "ACTIVE"


def test_a_server_booted_from_a_volume_moves_without_block_migration(env: Env) -> None:
    """Nova: block_migration false needs shared storage, or a server booted from a
    volume with no local disk; the source is told there is no disk to mirror."""
    pair, a, b, cloud = env.pair, env.pair.a, env.pair.b, env.cloud
    vid = env.volume()
    cloud.openstack("volume", "set", "--bootable", vid)
    flavor = cloud.openstack("flavor", "show", f"{pair.image}-flavor", "-f", "json")["id"]
    version = {"OpenStack-API-Version": "compute 2.30"}
    with cloud.http(cloud.token()) as client:
        resp = client.post(f"{V}/servers", headers=version, json={"server": {
            "name": unique("lmsrv"), "flavorRef": flavor, "networks": "none",
            "availability_zone": f"nova:{a.name}",
            "block_device_mapping_v2": [{"boot_index": 0, "uuid": vid,
                                         "source_type": "volume",
                                         "destination_type": "volume"}]}})
        assert resp.status_code == 202, resp.text
        server = resp.json()["server"]["id"]
        env.settle(vid, "in-use")
        pair.wait_server(server, a.name)
        pair.ending[server] = "running"
        resp = client.post(f"{V}/servers/{server}/action", headers=version, json={
            "os-migrateLive": {"host": b.name, "block_migration": False}})
        assert resp.status_code == 202, resp.text
    env.converge()
    wait_for(lambda: env.migration(server)["Status"] == "running", 30, "running")
    orders = wait_for(lambda: [i["migrate_to"] for d in pair.agents[a.name].seen
                               for i in d["instances"]
                               if i["id"] == server and "migrate_to" in i], 30, "sent")
    assert orders[-1]["nbd_port"] is None  # nothing to mirror
    pair.ending[server] = "completed"
    pair.wait_server(server, b.name)
    ((node, (key,)),) = env.exports(vid)
    assert node == b.id and f"-lm{env.migration(server)['Id']}:" in key


def test_an_image_booted_server_still_needs_block_migration(env: Env) -> None:
    pair, a, b = env.pair, env.pair.a, env.pair.b
    server = pair.boot(a.name)
    _attached(env, server)  # a data volume is shared, the local disk is not
    with env.cloud.http(env.cloud.token()) as client:
        resp = client.post(f"{V}/servers/{server}/action",
                           headers={"OpenStack-API-Version": "compute 2.30"},
                           json={"os-migrateLive": {"host": b.name,
                                                    "block_migration": False}})
    assert resp.status_code == 400 and "is not on shared storage" in resp.text, resp.text
