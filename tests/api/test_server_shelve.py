"""shelve, shelveOffload and unshelve through the real CLI and openstacksdk; the unknown-AZ refusal.

The nodes are agent-less (FakeNode): the test uploads the shelve snapshot for them and
reports the unshelved VM running. Nova's default shelved_offload_time is 0, so a shelved
server is offloaded as soon as its snapshot is stored.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openstack.exceptions
import pytest
from sqlalchemy import select

from atwill.controller.db.compute import Node
from atwill.controller.db.session import Database
from tests.api.test_image_cli import sdk_test
from tests.api.test_server_image import FakeNode, V, mv
from tests.cloud import Cloud, CommandFailed, unique
from tests.imagedata import qcow2_bytes

NOT_AVAILABLE = "The requested availability zone is not available"


@dataclass
class Env:
    cloud: Cloud
    a1: FakeNode
    a2: FakeNode
    b1: FakeNode
    zone_a: str
    zone_b: str
    flavor: str
    image: str
    user: str
    project_id: str

    def node(self, name: str | None) -> FakeNode:
        return next(n for n in (self.a1, self.a2, self.b1) if n.name == name)

    def server(self, zone: str | None = None) -> dict[str, Any]:
        """An ACTIVE server of the user's in zone A (or zone), on whichever node took it."""
        made = self.cloud.openstack(
            "server", "create", "--flavor", self.flavor, "--image", self.image, "--no-network",
            "--availability-zone", zone or self.zone_a, unique("shsrv"), "-f", "json",
            user=self.user)
        host = self.show(made["id"], admin=True)["OS-EXT-SRV-ATTR:host"]
        self.node(host).beat({made["id"]: {"state": "running", "rebuild_serial": 0}})
        shown = self.show(made["id"], admin=True)
        assert shown["status"] == "ACTIVE", shown
        return shown

    def show(self, server_id: str, admin: bool = False) -> dict[str, Any]:
        token = self.cloud.token() if admin else self.cloud.token(self.user)
        with self.cloud.http(token) as client:
            return client.get(f"{V}/servers/{server_id}", headers=mv("2.96")).json()["server"]

    def action(self, server_id: str, body: Any, version: str = "2.96",
               admin: bool = False) -> httpx.Response:
        token = self.cloud.token() if admin else self.cloud.token(self.user)
        with self.cloud.http(token) as client:
            return client.post(f"{V}/servers/{server_id}/action", headers=mv(version),
                               json=body)

    def image_doc(self, image_id: str) -> httpx.Response:
        with self.cloud.http(self.cloud.token(self.user)) as client:
            return client.get(f"/image/v2/images/{image_id}")

    def events(self, server_id: str, action: str) -> list[tuple[str, str]]:
        with self.cloud.http(self.cloud.token()) as client:
            found = client.get(f"{V}/servers/{server_id}/os-instance-actions").json()
            request_id = [a["request_id"] for a in found["instanceActions"]
                          if a["action"] == action][0]
            events = client.get(f"{V}/servers/{server_id}/os-instance-actions/{request_id}",
                                headers=mv("2.84")).json()["instanceAction"]["events"]
        return sorted((e["event"], e["result"]) for e in events)

    def shelve(self, server: dict[str, Any]) -> str:
        """Shelve server and upload its snapshot as its node: the shelved image's id."""
        node = self.node(self.show(server["id"], admin=True)["OS-EXT-SRV-ATTR:host"])
        assert self.action(server["id"], {"shelve": None}).status_code == 202
        image_id = node.desired(server["id"])["snapshot"]["image_id"]
        assert node.upload(image_id, qcow2_bytes(1024)).status_code == 204
        assert self.show(server["id"])["status"] == "SHELVED_OFFLOADED"
        return image_id

    def delete(self, server_id: str) -> None:
        self.cloud.openstack("server", "delete", server_id, user=self.user)

    def usage(self, node: FakeNode) -> tuple[int, int, int]:
        db = Database(self.cloud.db_url())
        try:
            with db.session() as session:
                row = session.execute(select(Node.vcpus_used, Node.memory_mb_used,
                                             Node.local_gb_used).where(Node.id == node.id)).one()
                return tuple(row)
        finally:
            db.dispose()

    def limits(self) -> dict[str, int]:
        with self.cloud.http(self.cloud.token(self.user)) as client:
            return client.get(f"{V}/limits").json()["limits"]["absolute"]


def desired_state(node: FakeNode) -> dict[str, Any]:
    with node.http() as client:
        return client.get(f"/cluster/v1/nodes/{node.id}/desired", params={"wait": 0}).json()


def wait_for(check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out")


def rows(cloud: Cloud) -> dict[str, list[tuple]]:
    # Nodes change on their own (heartbeats), and so do the HA monitor's records.
    found = {k: v for k, v in cloud.db_snapshot().items()
             if k not in ("nodes", "cluster_revision", "fence_events")}
    for table, mark in (("instance_action_events", "ha_"), ("instance_actions", "req-ha-")):
        found[table] = [row for row in found.get(table, []) if not any(
            isinstance(value, str) and value.startswith(mark) for value in row)]
    return found


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("shelve-nodes")
    zone_a, zone_b = unique("shelveaz"), unique("shelvebz")
    nodes = [FakeNode(cloud, tmp, zone_a), FakeNode(cloud, tmp, zone_a),
             FakeNode(cloud, tmp, zone_b)]
    data = tmp / "base.img"
    data.write_bytes(os.urandom(64 * 1024))
    flavor = unique("shflv")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public",
                            "--property", "os_distro=atwill", unique("shbase"), "-f",
                            "json")["id"]
    project, user = unique("shproj"), unique("shuser")
    project_id = cloud.openstack("project", "create", project, "-f", "json")["id"]
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    try:
        yield Env(cloud, *nodes, zone_a, zone_b, flavor, image, user, project_id)
    finally:
        cloud.openstack("image", "delete", image)
        cloud.openstack("flavor", "delete", flavor)
        for node in nodes:
            node.remove()


def test_cli_shelves_offloads_and_unshelves(env: Env) -> None:
    server = env.server()
    sid, name = server["id"], server["name"]
    node = env.node(server["OS-EXT-SRV-ATTR:host"])
    held = env.usage(node)
    used = {k: env.limits()[k] for k in ("totalInstancesUsed", "totalCoresUsed",
                                         "totalRAMUsed")}
    done: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: done.update(proc=env.cloud.openstack(
        "server", "shelve", "--wait", sid, user=env.user, check=False)))
    waiter.start()
    try:
        pending = wait_for(lambda: node.desired(sid)["snapshot"])
        shown = env.show(sid)
        assert (shown["status"], shown["OS-EXT-STS:task_state"]) == ("ACTIVE", "shelving")
        image = env.image_doc(pending["image_id"]).json()
        assert (image["name"], image["owner"], image["status"], image["visibility"]) == (
            f"{name}-shelved", env.project_id, "queued", "private")
        assert image["image_type"] == "snapshot" and image["instance_uuid"] == sid
        assert image["base_image_ref"] == env.image and image["os_distro"] == "atwill"
        assert node.upload(pending["image_id"], qcow2_bytes(2048)).status_code == 204
    finally:
        waiter.join(120)
    assert done["proc"].returncode == 0, done["proc"].stderr
    shown = env.show(sid, admin=True)
    assert (shown["status"], shown["OS-EXT-STS:vm_state"], shown["OS-EXT-STS:task_state"]) \
        == ("SHELVED_OFFLOADED", "shelved_offloaded", None)
    assert shown["OS-EXT-SRV-ATTR:host"] is None
    assert shown["OS-EXT-SRV-ATTR:hypervisor_hostname"] is None
    assert shown["OS-EXT-STS:power_state"] == 4 and shown["hostId"] == ""
    assert env.image_doc(pending["image_id"]).json()["status"] == "active"
    # The node no longer holds it: counters back, destroyed from its desired state.
    assert env.usage(node) == (held[0] - 1, held[1] - 64, held[2] - 1)
    state = desired_state(node)
    assert sid not in [i["id"] for i in state["instances"]] and sid in state["destroy"]
    # Nova's legacy quota counting: an offloaded server still counts.
    assert {k: env.limits()[k] for k in used} == used
    assert env.events(sid, "shelve") == [("compute_shelve_instance", "Success")]

    for other in (env.a1, env.a2):
        other.beat({})  # nothing runs until the test says so
    waiter = threading.Thread(target=lambda: done.update(proc=env.cloud.openstack(
        "server", "unshelve", "--wait", sid, user=env.user, check=False)))
    waiter.start()
    try:
        host = wait_for(lambda: env.show(sid, admin=True)["OS-EXT-SRV-ATTR:host"])
        target = env.node(host)
        assert target in (env.a1, env.a2)  # the server's zone is kept
        shown = env.show(sid, admin=True)
        assert (shown["status"], shown["OS-EXT-STS:task_state"]) == (
            "SHELVED_OFFLOADED", "spawning")
        spec = target.desired(sid)
        assert spec["image"]["id"] == pending["image_id"] and spec["building"] is True
        assert spec["power"] == "running"
        target.beat({sid: {"state": "running", "rebuild_serial": 0}})
    finally:
        waiter.join(120)
    assert done["proc"].returncode == 0, done["proc"].stderr
    shown = env.show(sid, admin=True)
    assert (shown["status"], shown["OS-EXT-STS:task_state"]) == ("ACTIVE", None)
    assert shown["image"]["id"] == env.image  # the server still names its own image
    assert env.image_doc(pending["image_id"]).status_code == 404
    assert target.desired(sid)["image"]["id"] == env.image
    assert sid not in desired_state(target)["destroy"]
    assert env.events(sid, "unshelve") == [("compute_unshelve_instance", "Success"),
                                           ("schedule_instances", "Success")]
    env.delete(sid)


@sdk_test
def test_sdk_unshelves_into_another_zone_and_onto_a_host(env: Env) -> None:
    server = env.server()
    image_id = env.shelve(server)
    conn = env.cloud.sdk(env.user)
    admin = env.cloud.sdk()
    try:
        conn.compute.unshelve_server(server["id"], availability_zone=env.zone_b)
        shown = env.show(server["id"], admin=True)
        assert shown["OS-EXT-SRV-ATTR:host"] == env.b1.name
        assert shown["OS-EXT-AZ:availability_zone"] == env.zone_b
        assert shown["pinned_availability_zone"] == env.zone_b
        env.b1.beat({server["id"]: {"state": "running", "rebuild_serial": 0}})
        assert env.show(server["id"])["status"] == "ACTIVE"
        assert env.image_doc(image_id).status_code == 404
        # Again through the SDK: shelve, then unpinned and onto a named host (2.91, admin).
        conn.compute.shelve_server(server["id"])
        pending = env.b1.desired(server["id"])["snapshot"]["image_id"]
        assert env.b1.upload(pending, qcow2_bytes(1024)).status_code == 204
        found = conn.compute.get_server(server["id"])
        assert found.status == "SHELVED_OFFLOADED"
        admin.compute.unshelve_server(server["id"], availability_zone=None,
                                      host=env.a2.name)
        shown = env.show(server["id"], admin=True)
        assert shown["OS-EXT-SRV-ATTR:host"] == env.a2.name
        assert shown["pinned_availability_zone"] is None
        env.a2.beat({server["id"]: {"state": "running", "rebuild_serial": 0}})
        assert env.show(server["id"])["status"] == "ACTIVE"
    finally:
        conn.close()
        admin.close()
        env.delete(server["id"])


@sdk_test
def test_sdk_shelve_offload_of_a_server_that_is_not_shelved_is_refused(env: Env) -> None:
    server = env.server()
    admin = env.cloud.sdk()
    conn = env.cloud.sdk(env.user)
    try:
        before = rows(env.cloud)
        with pytest.raises(openstack.exceptions.ForbiddenException):
            conn.compute.shelve_offload_server(server["id"])  # admin only, as Nova
        with pytest.raises(openstack.exceptions.ConflictException) as err:
            admin.compute.shelve_offload_server(server["id"])
        assert f"Cannot 'shelveOffload' instance {server['id']} while it is in vm_state " \
               "active" in str(err.value)
        assert rows(env.cloud) == before
    finally:
        conn.close()
        admin.close()
        env.delete(server["id"])


def test_failed_snapshot_leaves_the_server_as_it_was(env: Env) -> None:
    server = env.server()
    node = env.node(server["OS-EXT-SRV-ATTR:host"])
    held = env.usage(node)
    assert env.action(server["id"], {"shelve": {}}).status_code == 202
    image_id = node.desired(server["id"])["snapshot"]["image_id"]
    before = rows(env.cloud)
    again = env.action(server["id"], {"shelve": None})
    assert again.status_code == 409 and again.json()["conflictingRequest"]["message"] == (
        f"Cannot 'shelve' instance {server['id']} while it is in task_state shelving")
    assert rows(env.cloud) == before
    assert node.fail(image_id, "qemu-img convert exited 1").status_code == 204
    shown = env.show(server["id"], admin=True)
    assert (shown["status"], shown["OS-EXT-STS:task_state"]) == ("ACTIVE", None)
    assert shown["OS-EXT-SRV-ATTR:host"] == node.name and env.usage(node) == held
    assert env.image_doc(image_id).status_code == 404
    assert env.events(server["id"], "shelve") == [("compute_shelve_instance", "Error")]
    env.delete(server["id"])


def test_deleting_an_offloaded_server_deletes_its_shelved_image(env: Env) -> None:
    server = env.server()
    image_id = env.shelve(server)
    env.delete(server["id"])
    assert env.image_doc(image_id).status_code == 404


def test_unshelve_with_no_room_stays_offloaded(env: Env) -> None:
    server = env.server()
    env.shelve(server)
    for node in (env.a1, env.a2):
        env.cloud.openstack("compute", "service", "set", "--disable", node.name, "nova-compute")
    try:
        assert env.action(server["id"], {"unshelve": None}).status_code == 202
        shown = env.show(server["id"])
        assert (shown["status"], shown["OS-EXT-STS:task_state"]) == ("SHELVED_OFFLOADED", None)
        events = env.events(server["id"], "unshelve")
        assert events == [("schedule_instances", "Error")]
    finally:
        for node in (env.a1, env.a2):
            env.cloud.openstack("compute", "service", "set", "--enable", node.name,
                                "nova-compute")
    env.delete(server["id"])


@pytest.fixture(scope="module")
def offloaded(env: Env) -> Iterator[dict[str, Any]]:
    server = env.server()
    env.shelve(server)
    yield env.show(server["id"], admin=True)
    env.delete(server["id"])


@pytest.fixture(scope="module")
def active(env: Env) -> Iterator[dict[str, Any]]:
    server = env.server()
    yield server
    env.delete(server["id"])


REFUSED_UNSHELVE = [
    ("2.77", {"unshelve": {}}, False, 400, "'availability_zone' is a required property"),
    ("2.77", {"unshelve": {"availability_zone": "x", "host": "h"}}, True, 400,
     "Additional properties"),
    ("2.77", {"unshelve": {"availability_zone": " padded"}}, False, 400, "availability_zone"),
    ("2.77", {"unshelve": "zone"}, False, 400, "is not of type"),
    ("2.77", {"unshelve": {"availability_zone": "nosuch-zone"}}, False, 400, NOT_AVAILABLE),
    ("2.91", {"unshelve": {"availability_zone": 5}}, False, 400, "availability_zone"),
    ("2.91", {"unshelve": {"host": 5}}, True, 400, "host"),
    ("2.91", {"unshelve": {"colour": "blue"}}, False, 400, "Additional properties"),
    ("2.91", {"unshelve": {"host": "HOST_A"}}, False, 403, "unshelve_to_host"),
    ("2.91", {"unshelve": {"host": "no-such-host"}}, True, 400,
     "Compute host no-such-host could not be found."),
    ("2.91", {"unshelve": {"host": "HOST_B"}}, True, 409, "is not in the availability zone"),
    ("2.91", {"unshelve": {"host": "HOST_A", "availability_zone": "ZONE_B"}}, True, 409,
     "is not in the availability zone"),
]


@pytest.mark.parametrize(("version", "body", "admin", "status", "text"), REFUSED_UNSHELVE)
def test_refused_unshelves_change_nothing(env: Env, offloaded: dict[str, Any], version: str,
                                          body: dict[str, Any], admin: bool, status: int,
                                          text: str) -> None:
    args = body["unshelve"]
    if isinstance(args, dict):
        names = {"HOST_A": env.a1.name, "HOST_B": env.b1.name, "ZONE_B": env.zone_b}
        body = {"unshelve": {k: names.get(v, v) if isinstance(v, str) else v
                             for k, v in args.items()}}
    before = rows(env.cloud)
    resp = env.action(offloaded["id"], body, version=version, admin=admin)
    assert resp.status_code == status and text in resp.json()[next(iter(resp.json()))][
        "message"], resp.text
    assert "Traceback" not in resp.text
    assert rows(env.cloud) == before


def test_wrong_states_and_locks_change_nothing(env: Env, offloaded: dict[str, Any],
                                               active: dict[str, Any]) -> None:
    off, act = offloaded["id"], active["id"]
    before = rows(env.cloud)
    cases = [
        (off, {"shelve": None}, 409,
         f"Cannot 'shelve' instance {off} while it is in vm_state shelved_offloaded"),
        (act, {"unshelve": None}, 409,
         f"Cannot 'unshelve' instance {act} while it is in vm_state active"),
        (off, {"shelveOffload": None}, 409,
         f"Cannot 'shelveOffload' instance {off} while it is in vm_state shelved_offloaded"),
    ]
    for server_id, body, status, text in cases:
        resp = env.action(server_id, body, admin="shelveOffload" in body)
        assert resp.status_code == status and text in resp.text, resp.text
    assert rows(env.cloud) == before
    for server_id in (off, act):
        assert env.action(server_id, {"lock": None}, admin=True).status_code == 202
    try:
        before = rows(env.cloud)
        for server_id, body in ((act, {"shelve": None}), (off, {"unshelve": None})):
            resp = env.action(server_id, body)
            assert resp.status_code == 409 and f"Instance {server_id} is locked" in resp.text
        with pytest.raises(CommandFailed, match="is locked"):
            env.cloud.openstack("server", "shelve", act, user=env.user)
        assert rows(env.cloud) == before
    finally:
        for server_id in (off, act):
            assert env.action(server_id, {"unlock": None}, admin=True).status_code == 202


def test_a_building_server_is_not_shelved(env: Env) -> None:
    made = env.cloud.openstack(
        "server", "create", "--flavor", env.flavor, "--image", env.image, "--no-network",
        "--availability-zone", env.zone_a, unique("shbuild"), "-f", "json", user=env.user)
    try:
        before = rows(env.cloud)
        resp = env.action(made["id"], {"shelve": None})
        assert resp.status_code == 409 and "vm_state building" in resp.text, resp.text
        assert rows(env.cloud) == before
    finally:
        env.delete(made["id"])


def test_create_in_an_unknown_zone_is_refused(env: Env) -> None:
    before = rows(env.cloud)
    with pytest.raises(CommandFailed, match=NOT_AVAILABLE):
        env.cloud.openstack("server", "create", "--flavor", env.flavor, "--image", env.image,
                            "--no-network", "--availability-zone", unique("nosuchaz"),
                            unique("shnoaz"), user=env.user)
    flavor_id = env.cloud.openstack("flavor", "show", env.flavor, "-f", "json")["id"]
    with env.cloud.http(env.cloud.token(env.user)) as client:
        resp = client.post(f"{V}/servers", json={"server": {
            "name": "x", "flavorRef": flavor_id, "imageRef": env.image, "networks": "none",
            "availability_zone": "nosuch"}}, headers=mv("2.37"))
    assert resp.status_code == 400 and resp.json()["badRequest"]["message"] == NOT_AVAILABLE
    assert rows(env.cloud) == before


def test_a_forced_host_skips_the_zone_check(env: Env) -> None:
    # Nova checks the zone only without a forced host (ZONE:HOST, admins).
    made = env.cloud.openstack(
        "server", "create", "--flavor", env.flavor, "--image", env.image, "--no-network",
        "--availability-zone", f"{unique('anyname')}:{env.b1.name}", unique("shforced"),
        "-f", "json")
    try:
        assert env.show(made["id"], admin=True)["OS-EXT-SRV-ATTR:host"] == env.b1.name
    finally:
        env.cloud.openstack("server", "delete", made["id"])
