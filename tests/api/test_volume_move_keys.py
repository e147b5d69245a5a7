"""A server that changes node gives its volume attachments new NBD keys
(volume/attachment_keys.py): the storage node's export then admits the new node's
attachment identity alone, and the node it left holds no key that still works.

Cold migration confirmed, resize and its revert, evacuation; a volume detached before a
move and a server deleted after one leave no admitted key. Agent-less nodes: the small
agents of test_server_resize.py move the disk and report the volumes they were given;
a storage node without an agent (volume_nodes.py) reports its exports when told to.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.admin_api import admin_request, show_server
from tests.api.aggregate_nodes import JoinedNode, wait_for
from tests.api.lockout_cloud import own_cloud
from tests.api.test_server_resize import HOST, Pair
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, unique
from tests.imagedata import qcow2_bytes

V = "/compute/v2.1"


@dataclass
class Env:
    pair: Pair
    storage: StorageNode

    @property
    def cloud(self) -> Cloud:
        return self.pair.cloud

    def volume(self) -> str:
        vid = self.cloud.openstack("volume", "create", "--size", "1", unique("mkvol"), "-f",
                                   "json")["id"]
        self.storage.converge()
        wait_for(lambda: self.status(vid) == "available", 30, f"{vid} available")
        return vid

    def status(self, vid: str) -> str:
        """Over HTTP (polled: a CLI look is a process, a login and a catalog)."""
        resp = admin_request(self.cloud, "GET", f"/volume/v3/volumes/{vid}")
        assert resp.status_code == 200, resp.text
        return str(resp.json()["volume"]["status"])

    def attach(self, server: str, vid: str) -> None:
        """Attach, export, and wait for the server's node to plug it in."""
        self.cloud.openstack("server", "add", "volume", server, vid)
        self.settle(vid, "in-use")

    def settle(self, vid: str, status: str) -> None:
        def done() -> bool:
            self.storage.converge()  # the exports the storage node is asked for, made
            return self.status(vid) == status
        wait_for(done, 30, f"{vid} {status}")

    def exports(self, vid: str) -> list[tuple[str, list[str] | None]]:
        """(node id, the attachment keys it admits) of each export of the volume."""
        return [(e["node_id"], e["psk"]) for e in self.storage.wanted()[vid]["exports"]]

    def only_key(self, vid: str, node: JoinedNode) -> str:
        """The one "identity:key" the volume's one export admits, which is to node."""
        ((node_id, keys),) = self.exports(vid)
        assert node_id == node.id and keys is not None and len(keys) == 1, keys
        return keys[0]

    def given(self, node: JoinedNode) -> str:
        """Everything node's desired state carries, as text (to look for a key in)."""
        with node.http() as client:
            resp = client.get(f"/cluster/v1/nodes/{node.id}/desired", params={"wait": 0})
        assert resp.status_code == 200, resp.text
        return json.dumps(resp.json())

    def spec(self, node: JoinedNode, server: str) -> dict[str, Any] | None:
        """What node's desired state says of server (None: nothing)."""
        with node.http() as client:
            state = client.get(f"/cluster/v1/nodes/{node.id}/desired",
                               params={"wait": 0}).json()
        return next((i for i in state["instances"] if i["id"] == server), None)

    def plugged(self, node: JoinedNode, server: str) -> list[str]:
        """The "identity:key" of each volume node is asked to plug into server."""
        spec = self.spec(node, server) or {}
        return [f"{v['psk']['identity']}:{v['psk']['key']}" for v in spec.get("volumes", [])]

    def action(self, server: str, body: dict[str, Any]) -> None:
        with self.cloud.http(self.cloud.token()) as client:
            resp = client.post(f"{V}/servers/{server}/action", json=body)
        assert resp.status_code == 202, resp.text

    def holds_no_key(self, key: str, *nodes: JoinedNode) -> None:
        secret = key.split(":", 1)[1]
        for node in (*nodes, self.storage):
            assert secret not in self.given(node), f"{node.name} still has the key"


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    yield from own_cloud(engine, ha_auto_evacuate=False, resize_confirm_window=60)


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("mk")
    a, b = JoinedNode(cloud, tmp, "mknode-a"), JoinedNode(cloud, tmp, "mknode-b")
    storage = StorageNode(cloud, tmp, "mkstor")
    storage.own_zone("mkaz")
    storage.keep_beating()
    data = tmp / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", unique("mkimg"), "-f", "json")["id"]
    flavors = {"small": ("1", "64", "1"), "big": ("2", "128", "2")}
    for name, (vcpus, ram, disk) in flavors.items():
        cloud.openstack("flavor", "create", "--vcpus", vcpus, "--ram", ram, "--disk", disk,
                        f"{image}-{name}")
    pair = Pair(cloud, a, b, image)
    try:
        yield Env(pair, storage)
    finally:
        # The controller and its database are this module's own and destroyed next: its
        # servers, volumes, image and flavors go with them (deleting each through the CLI,
        # waiting on the agents, was 9 s of teardown); the agents' threads stop here.
        for agent in pair.agents.values():
            agent.stop()
        for node in (a, b, storage):
            node.remove()


def test_a_cold_migration_confirmed_leaves_the_new_node_the_only_key(env: Env) -> None:
    pair, a, b = env.pair, env.pair.a, env.pair.b
    server, vid = pair.boot(a.name), env.volume()
    env.attach(server, vid)
    before = env.only_key(vid, a)
    assert env.plugged(a, server) == [before]

    env.cloud.openstack("server", "migrate", server)
    pair.wait(server, "VERIFY_RESIZE", b.name)
    after = env.only_key(vid, b)  # exported to b alone, with a new key
    assert after.split(":")[0] == before.split(":")[0]  # the same attachment
    assert after != before
    env.storage.converge()
    wait_for(lambda: env.plugged(b, server) == [after], 30, "b given the new key")
    env.holds_no_key(before, a, b)

    env.cloud.openstack("server", "resize", "confirm", server)
    pair.wait(server, "ACTIVE", b.name)
    assert env.only_key(vid, b) == after  # confirming moves nothing: the key stays
    assert server in pair.destroyed(a) and after.split(":")[1] not in env.given(a)
    env.holds_no_key(before, a, b)
    assert env.cloud.openstack("volume", "show", vid, "-f", "json")["status"] == "in-use"


def test_a_resize_and_its_revert_each_give_new_keys(env: Env) -> None:
    pair, a, b = env.pair, env.pair.a, env.pair.b
    server, vid = pair.boot(a.name), env.volume()
    env.attach(server, vid)
    first = env.only_key(vid, a)

    env.cloud.openstack("server", "resize", "--flavor", f"{pair.image}-big", server)
    pair.wait(server, "VERIFY_RESIZE", b.name)
    second = env.only_key(vid, b)
    assert second != first
    env.holds_no_key(first, a, b)

    env.cloud.openstack("server", "resize", "revert", server)
    pair.wait(server, "ACTIVE", a.name)
    third = env.only_key(vid, a)  # back on a, but not with a's old key
    assert third not in (first, second)
    env.storage.converge()
    wait_for(lambda: env.plugged(a, server) == [third], 30, "a given the newest key")
    env.holds_no_key(first, a, b)
    env.holds_no_key(second, a, b)
    assert server in pair.destroyed(b) and third.split(":")[1] not in env.given(b)


def test_a_detached_volume_and_a_deleted_server_leave_no_key(env: Env) -> None:
    pair, a, b = env.pair, env.pair.a, env.pair.b
    server, kept, dropped = pair.boot(a.name), env.volume(), env.volume()
    env.attach(server, kept)
    env.attach(server, dropped)
    dropped_key = env.only_key(dropped, a)
    env.cloud.openstack("server", "remove", "volume", server, dropped)  # on the old node
    env.settle(dropped, "available")
    assert env.exports(dropped) == []

    env.cloud.openstack("server", "migrate", server)
    pair.wait(server, "VERIFY_RESIZE", b.name)
    env.cloud.openstack("server", "resize", "confirm", server)
    pair.wait(server, "ACTIVE", b.name)
    assert env.exports(dropped) == []  # the move did not bring it back
    kept_key = env.only_key(kept, b)
    env.holds_no_key(dropped_key, a, b)

    env.cloud.openstack("server", "delete", "--wait", server)
    env.settle(kept, "available")
    assert env.exports(kept) == []
    env.holds_no_key(kept_key, a, b)


def test_an_evacuation_goes_through_the_same_rekeying(env: Env) -> None:
    """The evacuation's keys (storage fencing) come from the one function too."""
    pair, a, b = env.pair, env.pair.a, env.pair.b
    server, vid = pair.boot(a.name), env.volume()
    env.attach(server, vid)
    before = env.only_key(vid, a)
    env.cloud.openstack("compute", "service", "set", "--down", a.name, "nova-compute")
    try:
        with env.cloud.http(env.cloud.token()) as client:
            resp = client.post(f"{V}/servers/{server}/action", json={"evacuate": {}},
                               headers={"OpenStack-API-Version": "compute 2.29"})
        assert resp.status_code == 200, resp.text
        pair.wait(server, "ACTIVE", b.name)
    finally:
        env.cloud.openstack("compute", "service", "set", "--up", a.name, "nova-compute")
    after = env.only_key(vid, b)
    assert after != before
    env.holds_no_key(before, a, b)


def test_a_shelved_server_is_exported_nothing_and_unshelved_with_new_keys(env: Env) -> None:
    """Offloaded, the server runs nowhere: the node it left is no longer served its
    volumes; unshelved (on whichever node), its attachments have new keys."""
    pair, a, b = env.pair, env.pair.a, env.pair.b
    server, vid = pair.boot(a.name), env.volume()
    env.attach(server, vid)
    before = env.only_key(vid, a)
    env.action(server, {"shelve": None})
    pending = wait_for(lambda: (env.spec(a, server) or {}).get("snapshot"), 30, "snapshot")
    with a.http() as client:  # the node uploads the shelve snapshot
        resp = client.put(f"/cluster/v1/nodes/{a.id}/snapshots/{pending['image_id']}",
                          content=qcow2_bytes(1024),
                          headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 204, resp.text
    wait_for(lambda: show_server(env.cloud, server)["status"] == "SHELVED_OFFLOADED", 30,
             "offloaded")
    assert env.exports(vid) == []
    env.holds_no_key(before, a, b)

    env.action(server, {"unshelve": None})
    shown = wait_for(lambda: (lambda s: s["status"] == "ACTIVE" and s)(
        show_server(env.cloud, server)), 30, "unshelved")
    node = a if shown[HOST] == a.name else b
    after = env.only_key(vid, node)
    assert after != before
    env.holds_no_key(before, a, b)


def test_a_build_retried_on_another_node_gets_new_keys(env: Env) -> None:
    """A server booting from a volume whose build failed on one node is rescheduled on
    another: the failed node's QEMU may have read the keys, the export refuses them."""
    pair, a, b = env.pair, env.pair.a, env.pair.b
    vid = env.volume()
    env.cloud.openstack("volume", "set", "--bootable", vid)
    flavor = env.cloud.openstack("flavor", "show", f"{pair.image}-small", "-f", "json")["id"]
    with env.cloud.http(env.cloud.token()) as client:
        resp = client.post(f"{V}/servers", headers={"OpenStack-API-Version": "compute 2.37"},
                           json={"server": {
                               "name": unique("mkbfv"), "flavorRef": flavor,
                               "networks": "none", "availability_zone": "nova",
                               "block_device_mapping_v2": [{
                                   "boot_index": 0, "uuid": vid, "source_type": "volume",
                                   "destination_type": "volume"}]}})
    assert resp.status_code == 202, resp.text
    server = resp.json()["server"]["id"]
    first = wait_for(lambda: show_server(env.cloud, server)[HOST], 30, "placed")  # no host forced
    failed, other = (a, b) if first == a.name else (b, a)
    before = env.only_key(vid, failed)  # not reported exported: not told to start it yet
    failed.beat({server: {"state": "error", "error": "qemu: cannot start"}})
    wait_for(lambda: show_server(env.cloud, server)[HOST] == other.name, 30, "rescheduled")
    after = env.only_key(vid, other)
    assert after != before
    env.holds_no_key(before, a, b)
    env.storage.converge()  # exported to the other node: it starts it
    pair.wait(server, "ACTIVE", other.name)
    assert env.plugged(other, server) == [after]
