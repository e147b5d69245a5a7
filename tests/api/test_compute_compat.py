"""Nova compatibility of the server API: response keys, counts, image minimums, versions,
and the server's security groups (os-security-groups, add/removeSecurityGroup)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete

from atwill.controller.db.compute import Node
from atwill.controller.db.session import Database
from tests.cloud import Cloud, unique

V = "/compute/v2.1"
# Tempest's create_server / create_server_with_admin_pass: nothing else is allowed.
CREATE_KEYS = {"id", "links", "OS-DCF:diskConfig", "security_groups", "adminPass"}
# Tempest's common_security_group (list_security_groups_by_server).
GROUP_KEYS = {"id", "name", "tenant_id", "rules", "description"}
RULE_KEYS = {"id", "parent_group_id", "ip_protocol", "from_port", "to_port", "group",
             "ip_range"}


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A member in a project of their own with a network, a flavor, images, and a node."""
    data = tmp_path_factory.mktemp("img") / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    flavor = unique("small")
    flavor_id = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus",
                                "1", flavor, "-f", "json")["id"]
    zero = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "0", "--vcpus", "1",
                           unique("zero"), "-f", "json")["id"]
    images = {}
    for key, extra in (("plain", []), ("ram", ["--min-ram", "128"]),
                       ("disk", ["--min-disk", "5"])):
        images[key] = cloud.openstack(
            "image", "create", "--file", str(data), "--disk-format", "raw",
            "--container-format", "bare", "--public", *extra, unique("img"), "-f", "json")["id"]
    project, user = unique("proj"), unique("user")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    net = cloud.openstack("network", "create", unique("net"), "-f", "json", user=user)["id"]
    cloud.openstack("subnet", "create", "--network", net, "--subnet-range", "10.77.0.0/24",
                    unique("sub"), user=user)
    zone = unique("az")
    db = Database(cloud.db_url())
    node = Node(name=unique("node"), availability_zone=zone, host_ip="10.0.0.9", vcpus=64,
                memory_mb=65536, local_gb=500, last_heartbeat=datetime.now(UTC).replace(
                    tzinfo=None))
    with db.session() as session:
        session.add(node)
    try:
        yield {"flavor": flavor, "flavor_id": flavor_id, "zero": zero, "user": user,
               "project": project, "net": net, "zone": zone, **images}
    finally:
        for server in cloud.openstack("server", "list", "-f", "json", user=user):
            cloud.openstack("server", "delete", server["ID"], user=user)
        with db.session() as session:
            session.execute(delete(Node).where(Node.id == node.id))
        db.dispose()


def _body(env: dict[str, str], image: str = "plain", **extra: object) -> dict:
    return {"server": {"name": unique("srv"), "flavorRef": env["flavor_id"],
                       "imageRef": env[image], "networks": "none", **extra}}


def _delete(cloud: Cloud, token: str, ids: list[str]) -> None:
    with cloud.http(token) as client:
        for ident in ids:
            assert client.delete(f"{V}/servers/{ident}").status_code == 204


@pytest.mark.parametrize("version", ["2.1", "2.96"])
def test_create_answers_only_novas_keys(cloud: Cloud, env: dict[str, str],
                                        version: str) -> None:
    token = cloud.token(env["user"])
    body = _body(env)
    if version == "2.1":
        del body["server"]["networks"]
    with cloud.http(token) as client:
        resp = client.post(f"{V}/servers", json=body, headers=mv(version))
    assert resp.status_code == 202, resp.text
    assert set(resp.json()) == {"server"}
    server = resp.json()["server"]
    assert set(server) <= CREATE_KEYS and {"id", "links"} <= set(server)
    assert "name" not in server and isinstance(server["adminPass"], str)
    assert server["security_groups"] == [{"name": "default"}]
    assert [link["rel"] for link in server["links"]] == ["self", "bookmark"]
    _delete(cloud, token, [server["id"]])


def test_multiple_create_with_reservation_id_answers_only_it(cloud: Cloud,
                                                             env: dict[str, str]) -> None:
    token = cloud.token(env["user"])
    with cloud.http(token) as client:
        resp = client.post(f"{V}/servers", headers=mv("2.96"), json=_body(
            env, min_count=2, max_count=2, return_reservation_id=True))
        assert resp.status_code == 202, resp.text
        assert set(resp.json()) == {"reservation_id"}
        made = client.get(f"{V}/servers", params={
            "reservation_id": resp.json()["reservation_id"]}).json()["servers"]
    assert len(made) == 2
    _delete(cloud, token, [s["id"] for s in made])


def test_min_count_alone_means_that_many(cloud: Cloud, env: dict[str, str]) -> None:
    token = cloud.token(env["user"])
    with cloud.http(token) as client:
        resp = client.post(f"{V}/servers", headers=mv("2.96"), json=_body(
            env, min_count=3, return_reservation_id=True))
        assert resp.status_code == 202, resp.text
        made = client.get(f"{V}/servers", params={
            "reservation_id": resp.json()["reservation_id"]}).json()["servers"]
    assert len(made) == 3
    _delete(cloud, token, [s["id"] for s in made])


@pytest.mark.parametrize(("image", "flavor", "message"), [
    ("ram", "flavor_id", "Flavor's memory is too small for requested image."),
    ("ram", "zero", "Flavor's memory is too small for requested image."),
    ("disk", "flavor_id", "Flavor's disk is smaller than the minimum size specified in image "
     "metadata. Flavor disk is 1073741824 bytes, minimum size is 5368709120 bytes."),
])
def test_image_minimums_are_enforced(cloud: Cloud, env: dict[str, str], image: str,
                                     flavor: str, message: str) -> None:
    body = _body(env, image)
    body["server"]["flavorRef"] = env[flavor]
    before = cloud.db_snapshot()
    with cloud.http(cloud.token(env["user"])) as client:
        resp = client.post(f"{V}/servers", json=body, headers=mv("2.96"))
    assert resp.status_code == 400, resp.text
    assert resp.json()["badRequest"]["message"] == message
    assert cloud.db_snapshot() == before


def test_zero_disk_flavor_skips_min_disk(cloud: Cloud, env: dict[str, str]) -> None:
    body = _body(env, "disk")
    body["server"]["flavorRef"] = env["zero"]
    token = cloud.token(env["user"])
    with cloud.http(token) as client:
        resp = client.post(f"{V}/servers", json=body, headers=mv("2.96"))
    assert resp.status_code == 202, resp.text
    _delete(cloud, token, [resp.json()["server"]["id"]])


def test_versions_list_v20_then_v21(cloud: Cloud) -> None:
    with cloud.http() as client:
        listed = client.get("/compute/")
        v20 = client.get("/compute/v2/")
    assert listed.status_code == 200
    versions = listed.json()["versions"]
    assert [(v["id"], v["status"]) for v in versions] == [("v2.0", "SUPPORTED"),
                                                          ("v2.1", "CURRENT")]
    assert versions[0]["version"] == "" and versions[0]["min_version"] == ""
    assert versions[1]["min_version"] == "2.1"
    # Tempest's list_versions schema: no other keys; media-types only in one version's view.
    for entry in versions:
        assert set(entry) == {"id", "status", "version", "min_version", "updated", "links"}
    assert v20.status_code == 200 and v20.json()["version"]["id"] == "v2.0"


