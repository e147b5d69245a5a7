"""Nova's os-volume_attachments with agent-less nodes: the storage node exports to the
server's compute node, which is given the volume once the export is reported and says
"attached" (volume-contract); detach waits for the node; server delete frees or deletes.
The real CLI attaches, lists and detaches; the API's versions, codes and refusals."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_server_image import FakeNode
from tests.api.test_volume_api import gone, rows, show
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, CommandFailed, unique

V = "/compute/v2.1"


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


@dataclass
class Env:
    cloud: Cloud
    compute: FakeNode
    storage: StorageNode
    zone: str
    flavor: str
    image: str
    users: list[str]
    reports: dict[str, Any] = field(default_factory=dict)

    def server(self, user: str) -> str:
        made = self.cloud.openstack(
            "server", "create", "--flavor", self.flavor, "--image", self.image, "--no-network",
            "--availability-zone", self.zone, unique("vsrv"), "-f", "json", user=user)
        self.report(made["id"], {})
        return made["id"]

    def report(self, server_id: str, volumes: dict[str, str] | None) -> None:
        """The compute node's report of this server: running, with these volumes (None:
        no "volumes" key, as an agent that never synced them)."""
        entry: dict[str, Any] = {"state": "running"}
        if volumes is not None:
            entry["volumes"] = volumes
        self.reports[server_id] = entry
        self.compute.beat(self.reports)

    def volume(self, user: str) -> str:
        vid = self.cloud.openstack("volume", "create", "--size", "1", unique("vv"), "-f",
                                   "json", user=user)["id"]
        self.storage.converge()
        return vid

    def client(self, user: str) -> httpx.Client:
        return self.cloud.http(self.cloud.token(user))

    def spec(self, server_id: str) -> dict[str, Any]:
        return self.compute.desired(server_id)

    def delete_server(self, server_id: str) -> None:
        self.cloud.openstack("server", "delete", server_id)
        self.reports.pop(server_id, None)
        self.compute.beat(self.reports)


def _project_user(cloud: Cloud, prefix: str) -> tuple[str, str]:
    project, user = unique(f"{prefix}proj"), unique(f"{prefix}user")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    return project, user


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("server-volumes")
    zone = unique("volaz")
    compute = FakeNode(cloud, tmp, zone)
    storage = StorageNode(cloud, tmp, "vstor")
    storage.keep_beating()
    data = tmp / "base.img"
    data.write_bytes(os.urandom(64 * 1024))
    flavor = unique("vflv")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", unique("vimg"),
                            "-f", "json")["id"]
    made = [_project_user(cloud, "va"), _project_user(cloud, "vb")]
    try:
        yield Env(cloud, compute, storage, zone, flavor, image, [u for _, u in made])
    finally:
        compute.remove()
        storage.remove()
        cloud.openstack("image", "delete", image)
        cloud.openstack("flavor", "delete", flavor)
        for project, user in made:
            cloud.openstack("user", "delete", user)
            cloud.openstack("project", "delete", project)


def test_cli_attach_list_detach_through_the_nodes(env: Env) -> None:
    user = env.users[0]
    server, vid = env.server(user), env.volume(user)
    try:
        added = env.cloud.openstack("server", "add", "volume", "--tag", "data",
                                    "--enable-delete-on-termination", server, vid,
                                    "-f", "json", user=user)
        assert (added["Volume ID"], added["Server ID"], added["Device"], added["Tag"],
                added["Delete On Termination"]) == (vid, server, "/dev/vdb", "data", True)
        assert show(env.cloud, vid)["status"] == "attaching"
        assert env.storage.export_targets(vid) == [(env.compute.id, env.compute.name, 1)]
        assert env.spec(server)["volumes"] == []  # no export reported yet
        env.storage.converge(host="10.99.0.7")
        wanted = env.spec(server)["volumes"]
        psk = wanted[0].pop("psk")  # the attachment's own key, which its export admits
        assert isinstance(wanted[0].pop("attachment_id"), str)  # the attempt errors name
        assert env.storage.wanted()[vid]["exports"][0]["psk"] == [
            f"{psk['identity']}:{psk['key']}"]
        assert wanted == [{
            "volume_id": vid, "serial": vid, "device": "/dev/vdb", "host": "10.99.0.7",
            "port": 10809, "export": vid, "boot_index": None, "read_only": False,
            "tls_hostname": env.storage.name}]
        env.report(server, {vid: "attached"})
        assert show(env.cloud, vid)["status"] == "in-use"
        listed = env.cloud.openstack("server", "volume", "list", server, "-f", "json",
                                     user=user)
        assert [(v["Volume ID"], v["Device"], v["Tag"]) for v in listed] == [
            (vid, "/dev/vdb", "data")]
        with env.client(user) as client:
            shown = client.get(f"{V}/servers/{server}", headers=mv("2.79")).json()["server"]
        assert shown["os-extended-volumes:volumes_attached"] == [
            {"id": vid, "delete_on_termination": True}]
        env.cloud.openstack("server", "remove", "volume", server, vid, user=user)
        assert show(env.cloud, vid)["status"] == "detaching"
        assert env.spec(server)["volumes"] == []
        assert env.storage.wanted()[vid]["exports"] != []  # until the node lets go
        env.report(server, {})
        assert env.storage.wanted()[vid]["exports"] == []
        assert env.cloud.openstack("server", "volume", "list", server, "-f", "json",
                                   user=user) == []
        env.storage.converge()
        assert show(env.cloud, vid)["status"] == "available"
    finally:
        env.delete_server(server)
        gone(env.cloud, env.storage, vid)


def test_a_detaching_attachment_cannot_be_connected_again(env: Env) -> None:
    """Cinder's attachment update takes a reserved attachment only: one its node is
    detaching stays detaching (it used to be made attaching again, exported anew)."""
    user = env.users[0]
    server, vid = env.server(user), env.volume(user)
    path, version = "/volume/v3/attachments", {"OpenStack-API-Version": "volume 3.54"}
    try:
        env.cloud.openstack("server", "add", "volume", server, vid, user=user)
        env.storage.converge(host="10.99.0.8")
        env.report(server, {vid: "attached"})
        env.cloud.openstack("server", "remove", "volume", server, vid, user=user)
        assert show(env.cloud, vid)["status"] == "detaching"
        with env.client(user) as client:
            listed = client.get(path, headers=version, params={"volume_id": vid}).json()
            [att] = listed["attachments"]
            assert att["status"] == "detaching"
            before = rows(env.cloud)
            put = client.put(f"{path}/{att['id']}", headers=version, json={
                "attachment": {"connector": {"host": env.compute.name}}})
            assert put.status_code == 400, put.text
            assert "invalid attachment status detaching" in put.json()["badRequest"]["message"]
        assert rows(env.cloud) == before
        assert env.spec(server)["volumes"] == []
        env.report(server, {})
        env.storage.converge()
        assert show(env.cloud, vid)["status"] == "available"
    finally:
        env.delete_server(server)
        gone(env.cloud, env.storage, vid)


def test_deleting_one_server_of_a_multiattach_volume_keeps_it_in_use(env: Env) -> None:
    """A server deleted with an attachment of a multiattach volume reserved for it: the
    volume stays in use by the other server (it was made detaching, then available)."""
    user = env.users[0]
    first, second = env.server(user), env.server(user)
    with env.client(user) as client:
        made = client.post("/volume/v3/volumes", headers={
            "OpenStack-API-Version": "volume 3.54"}, json={"volume": {
                "size": 1, "name": unique("multi"), "multiattach": True}})
        assert made.status_code == 202, made.text
        vid = made.json()["volume"]["id"]
    env.storage.converge()
    try:
        env.cloud.openstack("server", "add", "volume", first, vid, user=user)
        env.storage.converge(host="10.99.0.9")
        env.report(first, {vid: "attached"})
        assert show(env.cloud, vid)["status"] == "in-use"
        with env.client(user) as client:  # Cinder's attachments API takes a second one
            reserved = client.post("/volume/v3/attachments", headers={
                "OpenStack-API-Version": "volume 3.54"}, json={"attachment": {
                    "volume_uuid": vid, "instance_uuid": second}})
            assert reserved.status_code == 200, reserved.text
        env.delete_server(second)
        second = ""
        assert show(env.cloud, vid)["status"] == "in-use"
        assert [a["server_id"] for a in show(env.cloud, vid)["attachments"]] == [first]
    finally:
        for server in (first, second):
            if server:
                env.delete_server(server)
        gone(env.cloud, env.storage, vid)


def test_shapes_follow_the_microversion(env: Env) -> None:
    user = env.users[0]
    server, vid = env.server(user), env.volume(user)
    path = f"{V}/servers/{server}/os-volume_attachments"
    try:
        with env.client(user) as client:
            made = client.post(path, headers=mv("2.89"), json={"volumeAttachment": {
                "volumeId": vid, "tag": "t1", "delete_on_termination": False}})
            assert made.status_code == 200, made.text
            assert made.json()["volumeAttachment"] == {
                "id": vid, "volumeId": vid, "serverId": server, "device": "/dev/vdb",
                "tag": "t1", "delete_on_termination": False}
            old = client.get(f"{path}/{vid}", headers=mv("2.1")).json()["volumeAttachment"]
            assert old == {"id": vid, "volumeId": vid, "serverId": server,
                           "device": "/dev/vdb"}
            at70 = client.get(path, headers=mv("2.70")).json()["volumeAttachments"]
            assert [set(a) for a in at70] == [{"id", "volumeId", "serverId", "device",
                                               "tag"}]
            new = client.get(f"{path}/{vid}", headers=mv("2.89")).json()["volumeAttachment"]
            assert "id" not in new and new["attachment_id"] and new["bdm_uuid"]
            assert new["attachment_id"] != new["bdm_uuid"]
            assert client.get(path, headers=mv("2.89"), params={"offset": 1}).json() == {
                "volumeAttachments": []}
            upd = client.put(f"{path}/{vid}", headers=mv("2.85"), json={"volumeAttachment": {
                "volumeId": vid, "delete_on_termination": True}})
            assert upd.status_code == 202, upd.text
            shown = client.get(f"{V}/servers/{server}", headers=mv("2.3")).json()["server"]
            assert shown["os-extended-volumes:volumes_attached"] == [
                {"id": vid, "delete_on_termination": True}]
            at21 = client.get(f"{V}/servers/{server}").json()["server"]
            assert at21["os-extended-volumes:volumes_attached"] == [{"id": vid}]
    finally:
        env.delete_server(server)
        gone(env.cloud, env.storage, vid)


def _refused(client: httpx.Client, method: str, path: str, status: int,
             body: dict | None = None, version: str = "2.89") -> str:
    resp = client.request(method, path, headers=mv(version), json=body)
    assert resp.status_code == status, (method, path, body, resp.text)
    (fault,) = resp.json().values()
    assert fault["code"] == status
    return fault["message"]


def test_refusals_change_nothing(env: Env) -> None:
    a, b = env.users
    mine, theirs = env.server(a), env.server(b)
    vol, other, their_vol = env.volume(a), env.volume(a), env.volume(b)
    path = f"{V}/servers/{mine}/os-volume_attachments"
    try:
        with env.client(a) as client:
            assert client.post(path, headers=mv("2.79"), json={"volumeAttachment": {
                "volumeId": vol}}).status_code == 200
        before = rows(env.cloud)
        with env.client(a) as client:
            for body, status, version in (
                    ({"volumeId": vol}, 400, "2.79"),  # already attached
                    ({"volumeId": other, "tag": "x"}, 400, "2.48"),
                    ({"volumeId": other, "delete_on_termination": True}, 400, "2.78"),
                    ({"volumeId": other, "delete_on_termination": "yes"}, 400, "2.79"),
                    ({"volumeId": other, "device": "vdc"}, 400, "2.79"),
                    ({"volumeId": other, "bogus": 1}, 400, "2.79"),
                    ({}, 400, "2.79"),
                    ({"volumeId": their_vol}, 404, "2.79"),
                    ({"volumeId": "nope"}, 404, "2.79")):
                _refused(client, "POST", path, status, {"volumeAttachment": body}, version)
            _refused(client, "POST", f"{V}/servers/{theirs}/os-volume_attachments", 404,
                     {"volumeAttachment": {"volumeId": other}})
            _refused(client, "DELETE", f"{path}/{other}", 404)
            _refused(client, "GET", f"{path}/{other}", 404)
            _refused(client, "GET", f"{V}/servers/{theirs}/os-volume_attachments", 404)
            _refused(client, "PUT", f"{path}/{vol}", 403,
                     {"volumeAttachment": {"volumeId": other}})
            _refused(client, "PUT", f"{path}/{vol}", 400, {"volumeAttachment": {
                "volumeId": vol, "delete_on_termination": True}}, "2.84")
        with env.client(b) as client:
            # B's volume onto A's server: the server is not B's to see.
            _refused(client, "POST", path, 404, {"volumeAttachment": {"volumeId": their_vol}})
            _refused(client, "DELETE", f"{path}/{vol}", 404)
        with env.client("admin") as client:
            message = _refused(client, "PUT", f"{path}/{vol}", 409,
                               {"volumeAttachment": {"volumeId": other}})
            assert "not supported" in message
        assert rows(env.cloud) == before
        env.cloud.openstack("server", "lock", mine, user=a)
        locked = rows(env.cloud)
        with env.client(a) as client:
            _refused(client, "POST", path, 409, {"volumeAttachment": {"volumeId": other}})
            _refused(client, "DELETE", f"{path}/{vol}", 409)
        assert rows(env.cloud) == locked
        env.cloud.openstack("server", "unlock", mine, user=a)
        with pytest.raises(CommandFailed, match="already attached"):
            env.cloud.openstack("server", "add", "volume", mine, vol, user=a)
    finally:
        env.delete_server(mine)
        env.delete_server(theirs)
        for vid in (vol, other, their_vol):
            gone(env.cloud, env.storage, vid)


def test_server_delete_frees_or_deletes_its_volumes(env: Env) -> None:
    user = env.users[0]
    server, kept, dropped = env.server(user), env.volume(user), env.volume(user)
    path = f"{V}/servers/{server}/os-volume_attachments"
    try:
        with env.client(user) as client:
            for vid, flag in ((kept, False), (dropped, True)):
                resp = client.post(path, headers=mv("2.79"), json={"volumeAttachment": {
                    "volumeId": vid, "delete_on_termination": flag}})
                assert resp.status_code == 200, resp.text
        env.storage.converge()
        assert {v["device"] for v in env.spec(server)["volumes"]} == {"/dev/vdb", "/dev/vdc"}
        env.report(server, {kept: "attached", dropped: "attached"})
        assert show(env.cloud, kept)["status"] == "in-use"
        env.delete_server(server)
        assert dropped not in env.storage.wanted()
        assert env.storage.wanted()[kept]["exports"] == []
        env.storage.converge()
        assert show(env.cloud, kept)["status"] == "available"
        with env.client(user) as client:
            assert client.get(f"/volume/v3/volumes/{dropped}").status_code == 404
    finally:
        gone(env.cloud, env.storage, kept)
        gone(env.cloud, env.storage, dropped)


def _revision(node: FakeNode) -> int:
    with node.http() as client:
        return client.get(f"/cluster/v1/nodes/{node.id}/desired",
                          params={"wait": 0}).json()["revision"]


def test_an_export_reported_wakes_the_servers_node(env: Env) -> None:
    """The export alone changes (the volume stays attaching): the compute node's revision
    moves, or its long-poll never brings it the volume to plug in."""
    user = env.users[0]
    server, vid = env.server(user), env.volume(user)
    try:
        env.cloud.openstack("server", "add", "volume", server, vid, user=user)
        before = _revision(env.compute)
        assert env.spec(server)["volumes"] == []
        env.storage.converge(host="10.99.0.8")
        assert show(env.cloud, vid)["status"] == "attaching"
        assert _revision(env.compute) > before
        assert [v["host"] for v in env.spec(server)["volumes"]] == ["10.99.0.8"]
        settled = _revision(env.compute)
        env.storage.converge(host="10.99.0.8")  # the same exports again: nothing moves
        assert _revision(env.compute) == settled
    finally:
        env.delete_server(server)
        gone(env.cloud, env.storage, vid)


def test_a_failed_attach_is_rolled_back(env: Env) -> None:
    user = env.users[0]
    server, vid = env.server(user), env.volume(user)
    try:
        env.cloud.openstack("server", "add", "volume", server, vid, user=user)
        env.storage.converge()
        env.report(server, {vid: "error: the export refused the connection"})
        assert env.cloud.openstack("server", "volume", "list", server, "-f", "json",
                                   user=user) == []
        assert env.storage.wanted()[vid]["exports"] == []
        env.storage.converge()
        assert show(env.cloud, vid)["status"] == "available"
    finally:
        env.delete_server(server)
        gone(env.cloud, env.storage, vid)


def test_cinder_attachments_check_the_server_and_its_node(env: Env) -> None:
    a, b = env.users
    server_a, server_b = env.server(a), env.server(b)
    vol_a, vol_b = env.volume(a), env.volume(b)
    path, version = "/volume/v3/attachments", {"OpenStack-API-Version": "volume 3.54"}
    try:
        before = rows(env.cloud)
        with env.client(b) as client:
            for body, status in (
                    ({"volume_uuid": vol_a, "instance_uuid": server_b}, 404),
                    ({"volume_uuid": vol_b, "instance_uuid": server_a}, 404),
                    ({"volume_uuid": vol_b, "instance_uuid": env.image}, 404),
                    ({"volume_uuid": vol_b, "instance_uuid": server_b,
                      "connector": {"host": env.storage.name}}, 400),
                    ({"volume_uuid": vol_b, "connector": {"host": env.compute.name}}, 400)):
                resp = client.post(path, headers=version, json={"attachment": body})
                assert resp.status_code == status, (body, resp.text)
        assert rows(env.cloud) == before
        with env.client(b) as client:
            made = client.post(path, headers=version, json={"attachment": {
                "volume_uuid": vol_b, "instance_uuid": server_b,
                "connector": {"host": env.compute.name}}})
            assert made.status_code == 200, made.text
            att = made.json()["attachment"]
            assert att["instance"] == server_b
            assert client.delete(f"{path}/{att['id']}", headers=version).status_code == 200
    finally:
        env.delete_server(server_a)
        env.delete_server(server_b)
        gone(env.cloud, env.storage, vol_a)
        gone(env.cloud, env.storage, vol_b)


def _listed(env: Env) -> set[str]:
    with env.compute.http() as client:
        state = client.get(f"/cluster/v1/nodes/{env.compute.id}/desired",
                           params={"wait": 0}).json()
    return {i["id"] for i in state["instances"]}


def _boot(env: Env, user: str, *args: str) -> str:
    return env.cloud.openstack(
        "server", "create", "--flavor", env.flavor, "--no-network", "--availability-zone",
        env.zone, *args, unique("bfv"), "-f", "json", user=user)["id"]


def test_boot_from_volume_cli(env: Env) -> None:
    user = env.users[0]
    vid = env.volume(user)
    servers: list[str] = []
    made: list[str] = []
    try:
        with pytest.raises(CommandFailed, match="not bootable"):
            _boot(env, user, "--volume", vid)
        env.cloud.openstack("volume", "set", "--bootable", vid, user=user)
        servers.append(_boot(env, user, "--volume", vid))
        server = servers[0]
        assert show(env.cloud, vid)["status"] == "attaching"
        assert server not in _listed(env)  # the node waits for the export
        env.storage.converge(host="10.99.0.9")
        spec = env.spec(server)
        assert (spec["image"], spec["disk_gb"]) == (None, 0)  # no local root disk
        assert [(v["volume_id"], v["device"], v["boot_index"]) for v in spec["volumes"]] == [
            (vid, "/dev/vda", 0)]
        env.report(server, {vid: "attached"})
        assert show(env.cloud, vid)["status"] == "in-use"
        with env.client(user) as client:
            shown = client.get(f"{V}/servers/{server}", headers=mv("2.79")).json()["server"]
            assert (shown["status"], shown["image"]) == ("ACTIVE", "")
            assert shown["os-extended-volumes:volumes_attached"] == [
                {"id": vid, "delete_on_termination": False}]
            root = _refused(client, "DELETE", f"{V}/servers/{server}/os-volume_attachments/"
                            f"{vid}", 400)
            assert "root device" in root
        servers.append(_boot(env, user, "--image", env.image, "--boot-from-volume", "1",
                             "--delete-on-termination"))
        with env.client(user) as client:
            (att,) = client.get(f"{V}/servers/{servers[1]}/os-volume_attachments").json()[
                "volumeAttachments"]
        made.append(att["volumeId"])
        new = show(env.cloud, made[0])
        assert (new["status"], new["bootable"]) == ("creating", True)
        assert servers[1] not in _listed(env)
        env.storage.converge()
        assert show(env.cloud, made[0])["status"] == "attaching"
        assert env.spec(servers[1])["volumes"][0]["boot_index"] == 0
        env.report(servers[1], {made[0]: "attached"})
        assert show(env.cloud, made[0])["status"] == "in-use"
        for server in servers:
            env.delete_server(server)
        servers.clear()
        env.storage.converge()
        assert show(env.cloud, vid)["status"] == "available"
        with env.client(user) as client:
            assert client.get(f"/volume/v3/volumes/{made[0]}").status_code == 404
    finally:
        for server in servers:
            env.delete_server(server)
        for volume in (vid, *made):
            gone(env.cloud, env.storage, volume)


def test_bad_boot_mappings_change_nothing(env: Env) -> None:
    user = env.users[0]
    vid = env.volume(user)
    try:
        with env.client(user) as client:
            flavors = client.get(f"{V}/flavors/detail").json()["flavors"]
        flavor = next(f["id"] for f in flavors if f["name"] == env.flavor)
        before = rows(env.cloud)
        with env.client(user) as client:
            for bdm, status in (
                    ({"uuid": "nope", "source_type": "volume", "boot_index": 0,
                      "destination_type": "volume"}, 404),
                    ({"uuid": env.image, "source_type": "image", "boot_index": 0,
                      "destination_type": "volume"}, 400),  # no volume_size
                    ({"uuid": vid, "source_type": "volume", "boot_index": 0,
                      "destination_type": "volume", "delete_on_termination": 3}, 400)):
                resp = client.post(f"{V}/servers", headers=mv("2.79"), json={"server": {
                    "name": "bad", "flavorRef": flavor, "networks": "none",
                    "availability_zone": env.zone, "block_device_mapping_v2": [bdm]}})
                assert resp.status_code == status, (bdm, resp.text)
            many = client.post(f"{V}/servers", headers=mv("2.79"), json={"server": {
                "name": "bad", "flavorRef": flavor, "networks": "none", "min_count": 2,
                "availability_zone": env.zone,
                "block_device_mapping_v2": [{"uuid": vid, "source_type": "volume",
                                             "boot_index": 0,
                                             "destination_type": "volume"}]}})
            assert many.status_code == 400, many.text
        assert rows(env.cloud) == before
    finally:
        gone(env.cloud, env.storage, vid)


def test_a_boot_volume_in_error_fails_the_build(env: Env) -> None:
    """As Nova: the server goes to ERROR (not BUILD for ever) when its boot volume cannot
    be made, whether no storage node has room or the storage node fails to make it."""
    user = env.users[0]
    servers: list[str] = []
    made: list[str] = []
    try:
        servers.append(_boot(env, user, "--image", env.image, "--boot-from-volume", "150"))
        servers.append(_boot(env, user, "--image", env.image, "--boot-from-volume", "1"))
        with env.client(user) as client:
            for server in servers:
                (att,) = client.get(f"{V}/servers/{server}/os-volume_attachments").json()[
                    "volumeAttachments"]
                made.append(att["volumeId"])
        assert show(env.cloud, made[0])["status"] == "error"  # no room on any node
        env.storage.report({made[1]: {"state": "error", "size_gb": 1, "snapshots": {},
                                      "exports": {}, "error": "qemu-img: no space"}})
        for server in servers:
            shown = env.cloud.openstack("server", "show", server, "-f", "json", user=user)
            assert shown["status"] == "ERROR", shown
            assert "did not finish being created" in shown["fault"]["message"], shown
            assert server not in _listed(env)
    finally:
        for server in servers:
            env.delete_server(server)
        for volume in made:
            gone(env.cloud, env.storage, volume)
