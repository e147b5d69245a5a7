"""The server API without compute nodes: validation, quotas, groups, faults, policy.

Booting real VMs needs nodes with QEMU: that is tested in the lab
(tests/integration/test_instances.py).
"""

from __future__ import annotations

import os
import time

import pytest

from tests.cloud import Cloud, unique


@pytest.fixture(scope="module")
def boot(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A flavor, an image and a member user in a project of their own."""
    data = tmp_path_factory.mktemp("img") / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    flavor = unique("tiny")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", unique("img"),
                            "-f", "json")["id"]
    project, user = unique("proj"), unique("user")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    return {"flavor": flavor, "image": image, "user": user, "project": project}


def wait_status(cloud: Cloud, server: str, user: str, status: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = cloud.openstack("server", "show", server, "-f", "json", user=user)
        if shown["status"] == status:
            return shown
        time.sleep(0.5)
    raise AssertionError(f"{server} never reached {status}: {shown['status']}")


def test_no_nodes_means_error_with_reason(cloud: Cloud, boot: dict[str, str]) -> None:
    name = unique("srv")
    created = cloud.openstack("server", "create", "--flavor", boot["flavor"], "--image",
                              boot["image"], "--no-network", name, "-f", "json",
                              user=boot["user"])
    shown = wait_status(cloud, created["id"], boot["user"], "ERROR")
    assert "No valid host was found" in str(shown["fault"])
    events = cloud.openstack("server", "event", "list", name, "-f", "json", user=boot["user"])
    assert [e["Action"] for e in events] == ["create"]
    cloud.openstack("server", "delete", name, user=boot["user"])
    assert name not in [s["Name"] for s in cloud.openstack("server", "list", "-f", "json",
                                                          user=boot["user"])]


def test_quota_is_enforced_with_exact_numbers(cloud: Cloud, boot: dict[str, str]) -> None:
    project = unique("q")
    cloud.openstack("project", "create", project)
    cloud.openstack("quota", "set", "--instances", "1", project)
    cloud.openstack("role", "add", "--project", project, "--user", boot["user"], "member")
    token = _token(cloud, boot["user"], project)
    body = {"server": {"name": "a", "flavorRef": _flavor_id(cloud, boot["flavor"]),
                       "imageRef": boot["image"], "networks": "none", "min_count": 2,
                       "max_count": 2}}
    with cloud.http(token) as client:
        resp = client.post("/compute/v2.1/servers", json=body,
                           headers={"OpenStack-API-Version": "compute 2.96"})
    assert resp.status_code == 403
    assert resp.json()["forbidden"]["message"] == (
        "Quota exceeded for instances: Requested 2, but already used 0 of 1 instances.")


def _token(cloud: Cloud, user: str, project: str) -> str:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": "pw-" + user}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
    with cloud.http() as client:
        return client.post("/identity/v3/auth/tokens", json=body).headers["X-Subject-Token"]


def _flavor_id(cloud: Cloud, name: str) -> str:
    return cloud.openstack("flavor", "show", name, "-f", "json")["id"]


def test_server_groups(cloud: Cloud, boot: dict[str, str]) -> None:
    name = unique("grp")
    group = cloud.openstack("server", "group", "create", "--policy", "anti-affinity", name,
                            "-f", "json", user=boot["user"])
    assert group["policy"] == "anti-affinity"
    listed = cloud.openstack("server", "group", "list", "-f", "json", user=boot["user"])
    assert name in [g["Name"] for g in listed]
    cloud.openstack("server", "group", "delete", name, user=boot["user"])
    with cloud.http(cloud.token()) as client:
        resp = client.post("/compute/v2.1/os-server-groups", json={"server_group": {
            "name": "x", "policy": "sometimes"}}, headers={"OpenStack-API-Version":
                                                           "compute 2.64"})
        assert resp.status_code == 400


BAD = [
    ({"server": {"name": "x"}}, 400),
    ({"server": {"name": "x", "flavorRef": "nope", "imageRef": "IMG", "networks": "none"}},
     400),
    ({"server": {"name": "x", "flavorRef": "FLV", "imageRef": "nope", "networks": "none"}},
     400),
    ({"server": {"name": "x", "flavorRef": "FLV", "imageRef": "IMG", "networks": "some"}},
     400),
    ({"server": {"name": "x", "flavorRef": "FLV", "imageRef": "IMG"}}, 400),
    ({"server": {"name": "", "flavorRef": "FLV", "imageRef": "IMG", "networks": "none"}}, 400),
    ({"server": {"name": "x", "flavorRef": "FLV", "imageRef": "IMG", "networks": "none",
                 "min_count": 3, "max_count": 2}}, 400),
    ({"server": {"name": "x", "flavorRef": "FLV", "imageRef": "IMG", "networks": "none",
                 "metadata": {"a": 1}}}, 400),
    ({"server": {"name": "x", "flavorRef": "FLV", "imageRef": "IMG", "networks": "none",
                 "colour": "blue"}}, 400),
    ({"server": {"name": "x", "flavorRef": "FLV", "imageRef": "IMG", "networks": "none",
                 "key_name": "missing"}}, 400),
    ({"server": {"name": "x", "flavorRef": "FLV", "imageRef": "IMG",
                 "networks": [{"uuid": "nope"}]}}, 404),
    ({"server": {"name": "x", "flavorRef": "FLV", "imageRef": "IMG", "networks": "none",
                 "user_data": "%%%not base64"}}, 400),
]


@pytest.mark.parametrize("body, status", BAD)
def test_bad_create_requests(cloud: Cloud, boot: dict[str, str], body: dict,
                             status: int) -> None:
    import json

    text = json.dumps(body).replace("FLV", _flavor_id(cloud, boot["flavor"])).replace(
        "IMG", boot["image"])
    before = cloud.db_snapshot()
    with cloud.http(cloud.token()) as client:
        resp = client.post("/compute/v2.1/servers", content=text,
                           headers={"OpenStack-API-Version": "compute 2.96",
                                    "Content-Type": "application/json"})
    assert resp.status_code == status, resp.text
    assert "Traceback" not in resp.text
    assert cloud.db_snapshot() == before


def test_isolation_and_reader(cloud: Cloud, boot: dict[str, str]) -> None:
    name = unique("srv")
    created = cloud.openstack("server", "create", "--flavor", boot["flavor"], "--image",
                              boot["image"], "--no-network", name, "-f", "json",
                              user=boot["user"])
    listed = cloud.openstack("server", "list", "-f", "json")  # admin, own project
    assert created["id"] not in [s["ID"] for s in listed]
    every = cloud.openstack("server", "list", "--all-projects", "-f", "json")
    assert created["id"] in [s["ID"] for s in every]
    other = unique("other")
    cloud.openstack("project", "create", other)
    cloud.openstack("user", "create", "--password", "pw-" + other, other)
    cloud.openstack("role", "add", "--project", other, "--user", other, "reader")
    cloud.add_user(other, "pw-" + other, other)
    missing = cloud.openstack("server", "show", created["id"], user=other, check=False)
    assert missing.returncode == 1 and "No Server found" in missing.stderr
    denied = cloud.openstack("server", "create", "--flavor", boot["flavor"], "--image",
                             boot["image"], "--no-network", unique("s"), user=other,
                             check=False)
    assert denied.returncode == 1 and "compute:servers:create" in denied.stderr
    cloud.openstack("server", "delete", created["id"], user=boot["user"])
