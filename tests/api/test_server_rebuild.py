"""rebuild: keeping or changing the image, Nova's request keys and answer per
microversion, image minimums, locks, states, os-instance-actions, and what the node is
asked for. The node is joined through the real join API; the test speaks for its agent.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.api.test_server_image import FakeNode
from tests.cloud import Cloud, unique

V = "/compute/v2.1"
COMMON = {"id", "name", "status", "image", "flavor", "user_id", "tenant_id", "created",
          "updated", "progress", "metadata", "links", "addresses", "hostId",
          "OS-DCF:diskConfig", "accessIPv4", "accessIPv6"}
# Tempest's rebuild_server_with_admin_pass before 2.75, key by key as microversions add them.
SHORT = {"2.1": COMMON, "2.9": COMMON | {"locked"},
         "2.26": COMMON | {"locked", "description", "tags"},
         "2.57": COMMON | {"locked", "description", "tags", "key_name", "user_data"},
         "2.74": COMMON | {"locked", "description", "tags", "key_name", "user_data",
                           "trusted_image_certificates", "server_groups", "locked_reason"}}
FULL = COMMON | {"key_name", "security_groups", "OS-SRV-USG:launched_at",
                 "OS-SRV-USG:terminated_at", "OS-EXT-AZ:availability_zone",
                 "OS-EXT-STS:task_state", "OS-EXT-STS:vm_state", "OS-EXT-STS:power_state",
                 "os-extended-volumes:volumes_attached", "config_drive", "locked",
                 "description", "tags", "trusted_image_certificates", "server_groups",
                 "locked_reason", "user_data"}


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


@dataclass
class Env:
    cloud: Cloud
    node: FakeNode
    zone: str
    flavor: str
    images: dict[str, str]
    user: str
    keypair: str

    def server(self, state: str = "running") -> str:
        self.node.beat()
        made = self.cloud.openstack(
            "server", "create", "--flavor", self.flavor, "--image", self.images["base"],
            "--no-network", "--availability-zone", self.zone, unique("rb"), "-f", "json",
            user=self.user)
        self.node.beat({made["id"]: {"state": "running", "rebuild_serial": 0}})
        if state == "shutoff":
            self.cloud.openstack("server", "stop", made["id"], user=self.user)
            self.node.beat({made["id"]: {"state": "shutoff", "rebuild_serial": 0}})
        return made["id"]

    def show(self, server_id: str, version: str = "2.96") -> dict[str, Any]:
        with self.cloud.http(self.cloud.token(self.user)) as client:
            return client.get(f"{V}/servers/{server_id}", headers=mv(version)).json()["server"]

    def rebuild(self, server_id: str, args: Any, version: str = "2.96",
                user: str | None = None) -> httpx.Response:
        with self.cloud.http(self.cloud.token(user or self.user)) as client:
            return client.post(f"{V}/servers/{server_id}/action", headers=mv(version),
                               json={"rebuild": args})

    def events(self, server_id: str, action: str) -> list[tuple[str, str]]:
        with self.cloud.http(self.cloud.token()) as client:
            found = client.get(f"{V}/servers/{server_id}/os-instance-actions").json()
            request_id = next(a["request_id"] for a in found["instanceActions"]
                              if a["action"] == action)
            events = client.get(f"{V}/servers/{server_id}/os-instance-actions/{request_id}",
                                headers=mv("2.84")).json()["instanceAction"]["events"]
        return [(e["event"], e["result"]) for e in events]


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("rebuild")
    zone = unique("rbaz")
    node = FakeNode(cloud, tmp, zone)
    data = tmp / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    flavor = unique("rbflv")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    images = {key: cloud.openstack(
        "image", "create", "--file", str(data), "--disk-format", "raw", "--container-format",
        "bare", "--public", *extra, unique(f"rb{key}"), "-f", "json")["id"]
        for key, extra in (("base", []), ("other", []), ("ram", ["--min-ram", "128"]),
                           ("disk", ["--min-disk", "5"]))}
    project, user = unique("rbproj"), unique("rbuser")
    cloud.openstack("project", "create", project)
    cloud.openstack("quota", "set", "--instances", "50", "--cores", "50", "--ram", "8192",
                    project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    keypair = unique("rbkey")
    cloud.openstack("keypair", "create", keypair, user=user)
    try:
        yield Env(cloud, node, zone, flavor, images, user, keypair)
    finally:
        # One command each: the CLI deletes every id it is given.
        servers = [s["ID"] for s in cloud.openstack("server", "list", "-f", "json", user=user)]
        if servers:
            cloud.openstack("server", "delete", *servers, user=user)
        cloud.openstack("keypair", "delete", keypair, user=user)
        cloud.openstack("image", "delete", *images.values())
        cloud.openstack("flavor", "delete", flavor)
        node.remove()


def test_rebuild_keeping_the_image_with_the_cli(env: Env) -> None:
    server = env.server()
    serial = env.node.desired(server)["rebuild_serial"]
    out = env.cloud.openstack("server", "rebuild", server, "-f", "json", user=env.user)
    assert out["status"] == "REBUILD" and out["adminPass"]
    shown = env.show(server)
    assert shown["status"] == "REBUILD" and shown["image"]["id"] == env.images["base"]
    asked = env.node.desired(server)
    assert asked["rebuild_serial"] == serial + 1 and asked["building"]
    assert asked["image"]["id"] == env.images["base"] and asked["power"] == "running"
    # The agent has not rebuilt yet: a report of the old guest does not end the task.
    env.node.beat({server: {"state": "running", "rebuild_serial": serial}})
    assert env.show(server)["status"] == "REBUILD"
    env.node.beat({server: {"state": "running", "rebuild_serial": serial + 1}})
    shown = env.show(server)
    assert shown["status"] == "ACTIVE" and shown["OS-EXT-STS:task_state"] is None
    assert not env.node.desired(server)["building"]
    assert env.events(server, "rebuild") == [("compute_rebuild_instance", "Success")]
    actions = env.cloud.openstack("server", "event", "list", server, "-f", "json",
                                  user=env.user)
    assert [a["Action"] for a in actions][:2] == ["rebuild", "create"]


@pytest.mark.parametrize("version", ["2.1", "2.9", "2.26", "2.57", "2.74"])
def test_short_answer_before_275(env: Env, version: str) -> None:
    server = env.server()
    args: dict[str, Any] = {"imageRef": env.images["other"], "name": "renamed",
                            "metadata": {"role": "web"}, "adminPass": "s3cret-pass"}
    resp = env.rebuild(server, args, version)
    assert resp.status_code == 202, resp.text
    assert resp.headers["location"].endswith(f"/v2.1/servers/{server}")
    body = resp.json()["server"]
    assert set(body) == SHORT[version] | {"adminPass"}
    assert body["adminPass"] == "s3cret-pass" and body["status"] == "REBUILD"
    assert body["name"] == "renamed" and body["metadata"] == {"role": "web"}
    assert body["image"]["id"] == env.images["other"]
    shown = env.show(server)
    assert shown["name"] == "renamed" and shown["image"]["id"] == env.images["other"]
    assert env.node.desired(server)["image"]["id"] == env.images["other"]


@pytest.mark.parametrize("version", ["2.75", "2.90", "2.96"])
def test_full_answer_from_275(env: Env, version: str) -> None:
    server = env.server()
    user_data = base64.b64encode(b"#cloud-config\n").decode()
    args: dict[str, Any] = {"imageRef": env.images["other"], "key_name": env.keypair,
                            "user_data": user_data}
    expected = FULL | {"adminPass"}
    if version >= "2.90":
        args["hostname"] = "new-host"
        expected |= {"OS-EXT-SRV-ATTR:hostname"}
    if version == "2.96":
        expected |= {"pinned_availability_zone"}
    resp = env.rebuild(server, args, version)
    assert resp.status_code == 202, resp.text
    body = resp.json()["server"]
    assert set(body) == expected
    assert body["key_name"] == env.keypair and body["user_data"] == user_data
    assert body["OS-EXT-STS:task_state"] == "rebuilding" and body["adminPass"]
    asked = env.node.desired(server)
    assert asked["user_data"] == "#cloud-config\n"
    assert list(asked["metadata"]["public_keys"]) == [env.keypair]
    if version >= "2.90":
        assert body["OS-EXT-SRV-ATTR:hostname"] == "new-host"
        assert asked["metadata"]["hostname"] == "new-host"


def test_admin_answer_has_no_extended_user_data(env: Env) -> None:
    server = env.server()
    resp = env.rebuild(server, {"imageRef": env.images["base"]}, "2.75", user="admin")
    body = resp.json()["server"]
    assert "OS-EXT-SRV-ATTR:user_data" not in body and "user_data" in body
    assert body["OS-EXT-SRV-ATTR:host"] == env.node.name


def test_key_name_null_removes_the_key(env: Env) -> None:
    server = env.server()
    assert env.rebuild(server, {"imageRef": env.images["base"], "key_name": env.keypair},
                       "2.54").status_code == 202
    env.node.beat({server: {"state": "running", "rebuild_serial": 1}})
    resp = env.rebuild(server, {"imageRef": env.images["base"], "key_name": None}, "2.54")
    assert resp.status_code == 202 and resp.json()["server"]["key_name"] is None
    assert env.node.desired(server)["metadata"]["public_keys"] == {}


def test_stopped_server_stays_stopped(env: Env) -> None:
    server = env.server("shutoff")
    assert env.show(server)["status"] == "SHUTOFF"
    assert env.rebuild(server, {"imageRef": env.images["other"]}).status_code == 202
    assert env.show(server)["status"] == "REBUILD"
    asked = env.node.desired(server)
    assert asked["power"] == "stopped" and asked["building"]
    # The new guest boots, then is stopped (the agent reports the rebuild it did).
    env.node.beat({server: {"state": "running", "rebuild_serial": 1}})
    assert env.show(server)["status"] == "REBUILD"
    env.node.beat({server: {"state": "shutoff", "rebuild_serial": 1}})
    shown = env.show(server)
    assert shown["status"] == "SHUTOFF" and shown["OS-EXT-STS:task_state"] is None
    assert env.events(server, "rebuild") == [("compute_rebuild_instance", "Success")]


BAD = [
    ({}, "2.96", 400, "imageRef"),
    ({"imageRef": "{base}", "preserve_ephemeral": True}, "2.96", 400, "preserve_ephemeral"),
    ({"imageRef": "{base}", "preserve_ephemeral": "yes"}, "2.96", 400, "preserve_ephemeral"),
    ({"imageRef": "{base}", "trusted_image_certificates": ["abc"]}, "2.63", 400,
     "certificate"),
    ({"imageRef": "{base}", "trusted_image_certificates": None}, "2.62", 400,
     "trusted_image_certificates"),
    ({"imageRef": "{base}", "personality": [{"path": "/etc/x", "contents": "eA=="}]},
     "2.57", 400, "personality"),
    ({"imageRef": "{base}", "personality": "x"}, "2.56", 400, "personality"),
    ({"imageRef": "{base}", "user_data": "eA=="}, "2.56", 400, "user_data"),
    ({"imageRef": "{base}", "user_data": "not base64!"}, "2.57", 400, "user_data"),
    ({"imageRef": "{base}", "key_name": "k"}, "2.53", 400, "key_name"),
    ({"imageRef": "{base}", "key_name": "no-such-key"}, "2.54", 400, "key_name"),
    ({"imageRef": "{base}", "hostname": "h"}, "2.89", 400, "hostname"),
    ({"imageRef": "{base}", "name": ""}, "2.96", 400, "name"),
    ({"imageRef": "{base}", "metadata": {"a": 1}}, "2.96", 400, "metadata"),
    ({"imageRef": "{base}", "colour": "blue"}, "2.96", 400, "colour"),
    ({"imageRef": "00000000-0000-0000-0000-000000000000"}, "2.96", 400,
     "Cannot find image for rebuild"),
    ({"imageRef": "{ram}"}, "2.96", 400, "Flavor's memory is too small for requested image."),
    ({"imageRef": "{disk}"}, "2.96", 400, "Flavor's disk is smaller than the minimum size"),
]


@pytest.fixture(scope="module")
def idle(env: Env) -> str:
    return env.server()


@pytest.mark.parametrize("args, version, status, text", BAD,
                         ids=[str(i) for i in range(len(BAD))])
def test_bad_rebuilds_change_nothing(env: Env, idle: str, args: dict, version: str,
                                     status: int, text: str) -> None:
    args = {k: v.format(**env.images) if isinstance(v, str) else v for k, v in args.items()}
    before = env.show(idle)
    serial = env.node.desired(idle)["rebuild_serial"]
    resp = env.rebuild(idle, args, version)
    assert resp.status_code == status and text in resp.text, resp.text
    assert "Traceback" not in resp.text
    after = env.show(idle)
    assert (after["status"], after["name"], after["image"]) == (
        before["status"], before["name"], before["image"])
    assert env.node.desired(idle)["rebuild_serial"] == serial


def test_personality_is_accepted_before_257(env: Env) -> None:
    server = env.server()
    resp = env.rebuild(server, {"imageRef": env.images["base"], "personality": [
        {"path": "/etc/motd", "contents": base64.b64encode(b"hi").decode()}]}, "2.56")
    assert resp.status_code == 202, resp.text


def test_locked_and_busy_servers_are_refused(env: Env) -> None:
    server = env.server()
    with env.cloud.http(env.cloud.token()) as client:
        assert client.post(f"{V}/servers/{server}/action",
                           json={"lock": None}).status_code == 202
    resp = env.rebuild(server, {"imageRef": env.images["base"]})
    assert resp.status_code == 409 and "is locked" in resp.text
    with env.cloud.http(env.cloud.token()) as client:
        assert client.post(f"{V}/servers/{server}/action",
                           json={"unlock": None}).status_code == 202
    assert env.rebuild(server, {"imageRef": env.images["base"]}).status_code == 202
    again = env.rebuild(server, {"imageRef": env.images["base"]})
    assert again.status_code == 409 and "task_state rebuilding" in again.text


# Server update (PUT) ---------------------------------------------------------------------

UPDATE_SHORT = {"2.1": COMMON, "2.19": COMMON | {"locked", "description"},
                "2.74": SHORT["2.74"] - {"key_name", "user_data"}}


def _put(env: Env, server: str, body: dict, version: str) -> httpx.Response:
    with env.cloud.http(env.cloud.token(env.user)) as client:
        return client.put(f"{V}/servers/{server}", headers=mv(version), json={"server": body})


@pytest.mark.parametrize("version", ["2.1", "2.19", "2.74"])
def test_update_answers_the_short_view_before_275(env: Env, idle: str, version: str) -> None:
    resp = _put(env, idle, {"name": idle[:8]}, version)
    assert resp.status_code == 200, resp.text
    body = resp.json()["server"]
    assert set(body) == UPDATE_SHORT[version]
    assert all(set(a) == {"version", "addr"} for items in body["addresses"].values()
               for a in items)


def test_update_answers_the_full_view_from_275(env: Env, idle: str) -> None:
    body = _put(env, idle, {"name": idle[:8]}, "2.75").json()["server"]
    assert set(body) == FULL - {"user_data"}
    body = _put(env, idle, {"name": idle[:8]}, "2.96").json()["server"]
    assert set(body) == FULL - {"user_data"} | {"OS-EXT-SRV-ATTR:hostname",
                                                 "pinned_availability_zone"}


def test_new_name_reaches_the_guests_metadata(env: Env) -> None:
    """The node long-polls its desired state: an update must wake it with the new name.
    Nova's meta_data.json keeps the hostname unless 2.90's hostname changes it."""
    server = env.server()
    before = env.node.desired(server)["metadata"]
    with env.node.http() as agent:
        revision = agent.get(f"/cluster/v1/nodes/{env.node.id}/desired",
                             params={"wait": 0}).json()["revision"]
    env.cloud.openstack("server", "set", "--name", "renamed-vm", server, user=env.user)
    with env.node.http() as agent:
        woken = agent.get(f"/cluster/v1/nodes/{env.node.id}/desired",
                          params={"after": revision, "wait": 5}).json()
    assert woken["revision"] > revision
    meta = next(i for i in woken["instances"] if i["id"] == server)["metadata"]
    assert meta["name"] == "renamed-vm" and meta["hostname"] == before["hostname"]
    assert _put(env, server, {"hostname": "guest-two"}, "2.90").status_code == 200
    meta = env.node.desired(server)["metadata"]
    assert (meta["name"], meta["hostname"]) == ("renamed-vm", "guest-two")
    assert env.show(server, "2.90")["OS-EXT-SRV-ATTR:hostname"] == "guest-two"
