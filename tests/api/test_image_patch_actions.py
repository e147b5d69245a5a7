"""Image updates in both of Glance's JSON-patch dialects, and deactivate/reactivate."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cloud import Cloud, unique

PASSWORD = "Patch_pw_123"
V21 = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
V20 = {"Content-Type": "application/openstack-images-v2.0-json-patch"}
OCTET = {"Content-Type": "application/octet-stream"}


def project_user(cloud: Cloud, role: str) -> tuple[str, str]:
    """A new project with one user holding role there; (user, project id)."""
    project, user = unique("patchproj"), unique("patchuser")
    project_id = cloud.openstack("project", "create", project, "-f", "json")["id"]
    cloud.openstack("user", "create", "--password", PASSWORD, "--project", project, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, role)
    cloud.add_user(user, PASSWORD, project)
    return user, project_id


@pytest.fixture(scope="module")
def client(cloud: Cloud) -> Iterator[httpx.Client]:
    with cloud.http(cloud.token()) as http:
        http.base_url = cloud.url + "/image"
        yield http


@pytest.fixture()
def image(client: httpx.Client) -> Iterator[dict]:
    resp = client.post("/v2/images", json={"name": unique("patch"), "k": "v", "tags": ["a"]})
    assert resp.status_code == 201, resp.text
    yield resp.json()
    assert client.delete(f"/v2/images/{resp.json()['id']}").status_code == 204


def test_v20_dialect(client: httpx.Client, image: dict) -> None:
    ops = [{"replace": "/name", "value": "renamed"}, {"add": "/j", "value": "1"},
           {"remove": "/k"}, {"replace": "/tags", "value": ["b", "c"]},
           {"replace": "/min_ram", "value": 64}]
    resp = client.patch(f"/v2/images/{image['id']}", json=ops, headers=V20)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["name"] == "renamed" and body["j"] == "1" and "k" not in body
    assert sorted(body["tags"]) == ["b", "c"] and body["min_ram"] == 64
    assert client.get(f"/v2/images/{image['id']}").json() == body


def test_v21_add_replaces_as_rfc6902(client: httpx.Client, image: dict) -> None:
    ops = [{"op": "add", "path": "/name", "value": "n2"}, {"op": "add", "path": "/k",
                                                            "value": "w"}]
    resp = client.patch(f"/v2/images/{image['id']}", json=ops, headers=V21)
    assert resp.status_code == 200, resp.text
    assert resp.json()["name"] == "n2" and resp.json()["k"] == "w"


BAD = [
    (V20, [{"add": "/k", "value": "w"}], 409, "Property k already present."),
    (V20, [{"add": "/name", "value": "w"}], 409, "Property name already present."),
    (V20, [{"op": "replace", "path": "/name", "value": "x"}], 400,
     'Operation objects must contain exactly one member named "add", "remove", or "replace".'),
    (V20, [{"replace": "/name", "remove": "/k", "value": "x"}], 400, "only one member"),
    (V20, [{"replace": "/status", "value": "active"}], 403, "Attribute 'status' is read-only."),
    (V20, [{"remove": "/missing"}], 409, "Property missing does not exist."),
    (V21, [{"op": "move", "from": "/k", "path": "/j"}], 400,
     "Invalid operation: `move`. It must be one of the following: add, remove, replace."),
    (V21, [{"op": "copy", "from": "/k", "path": "/j"}], 400, "Invalid operation: `copy`."),
    (V21, [{"op": "add", "path": "/name/0", "value": "z"}], 400,
     "Invalid JSON pointer for this resource: '/name/0'"),
    (V21, [{"op": "remove", "path": "/tags/7"}], 409, "Property tags/7 does not exist."),
    (V21, [{"op": "replace", "path": "name", "value": "x"}], 400,
     'Pointer `name` does not start with "/".'),
    (V21, [{"op": "replace", "path": "/name"}], 400,
     'Operation "replace" requires a member named "value".'),
    (V21, [{"op": "replace", "path": "/missing", "value": "x"}], 409,
     "Property missing does not exist."),
    (V21, [{"op": "remove", "path": "/name"}], 403, "Property name may not be removed."),
    (V21, [{"op": "replace", "path": "/checksum", "value": "x"}], 403,
     "Attribute 'checksum' is read-only."),
    (V21, [{"op": "add", "path": "/os_glance_x", "value": "x"}], 403,
     "Attribute 'os_glance_x' is reserved."),
    (V21, [{"op": "add", "path": "/locations/0", "value": {"url": "http://x", "metadata": {}}}],
     403, "It's not allowed to add locations if locations are invisible."),
    (V21, [{"op": "replace", "path": "/locations", "value": []}], 403,
     "It's not allowed to update locations if locations are invisible."),
    (V21, {"op": "replace", "path": "/name", "value": "x"}, 400,
     "Request body must be a JSON array of operation objects."),
    (V21, ["replace"], 400, "Operations must be JSON objects."),
]


@pytest.mark.parametrize(("headers", "ops", "status", "message"), BAD,
                         ids=[f"{'2.0' if h is V20 else '2.1'}-{s}-{i}"
                              for i, (h, _, s, _) in enumerate(BAD)])
def test_bad_patch(client: httpx.Client, image: dict, headers: dict, ops: object,
                   status: int, message: str) -> None:
    resp = client.patch(f"/v2/images/{image['id']}", json=ops, headers=headers)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]["message"]
    assert client.get(f"/v2/images/{image['id']}").json() == image


@pytest.mark.parametrize("content_type", ["application/json", "application/json-patch+json",
                                          "text/plain"])
def test_other_media_types_are_415(client: httpx.Client, image: dict,
                                   content_type: str) -> None:
    resp = client.patch(f"/v2/images/{image['id']}", headers={"Content-Type": content_type},
                        json=[{"op": "replace", "path": "/name", "value": "x"}])
    assert resp.status_code == 415
    assert resp.json()["error"]["message"]
    if content_type == "application/json":
        # Other types are refused earlier, by the body check every JSON route shares.
        allowed = ("application/openstack-images-v2.0-json-patch, "
                   "application/openstack-images-v2.1-json-patch")
        assert resp.json()["error"]["message"] == \
            f"Image PATCH expects Content-Type one of: {allowed}"
        assert resp.headers["accept-patch"] == allowed
    assert client.get(f"/v2/images/{image['id']}").json() == image


@pytest.fixture(scope="module")
def member(cloud: Cloud) -> tuple[str, str]:
    return project_user(cloud, "member")


@pytest.fixture(scope="module")
def reader(cloud: Cloud, member: tuple[str, str]) -> str:
    """A reader in member's project."""
    user = unique("patchreader")
    cloud.openstack("user", "create", "--password", PASSWORD, user)
    cloud.openstack("role", "add", "--project", member[1], "--user", user, "reader")
    project = cloud.openstack("project", "show", member[1], "-f", "json")["name"]
    cloud.add_user(user, PASSWORD, project)
    return user


@pytest.fixture()
def owned(cloud: Cloud, member: tuple[str, str], tmp_path: Path) -> Iterator[str]:
    """An active image owned by member's project; its id."""
    data = tmp_path / "disk.raw"
    data.write_bytes(os.urandom(4096))
    name = unique("deact")
    image_id = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                               "--container-format", "bare", "--public", name, "-f", "json")["id"]
    cloud.openstack("image", "set", "--project", member[1], image_id)
    yield image_id
    cloud.openstack("image", "delete", image_id)


def status(cloud: Cloud, image_id: str) -> str:
    return cloud.openstack("image", "show", image_id, "-f", "json")["status"]


def test_member_of_owner_deactivates_and_reactivates(cloud: Cloud, member: tuple[str, str],
                                                     owned: str) -> None:
    """Glance's default: "role:admin or (role:member and project_id:%(project_id)s)"."""
    cloud.openstack("image", "set", "--deactivate", owned, user=member[0])
    assert status(cloud, owned) == "deactivated"
    # Both actions are idempotent in Glance.
    cloud.openstack("image", "set", "--deactivate", owned, user=member[0])
    with cloud.http(cloud.token(member[0])) as http:
        denied = http.get(f"/image/v2/images/{owned}/file")
    assert denied.status_code == 403
    assert denied.json()["error"]["message"] == (
        "The requested image has been deactivated. Image data download is forbidden.")
    with cloud.http(cloud.token()) as http:
        assert http.get(f"/image/v2/images/{owned}/file").status_code == 200
    cloud.openstack("image", "set", "--activate", owned, user=member[0])
    cloud.openstack("image", "set", "--activate", owned, user=member[0])
    assert status(cloud, owned) == "active"


@pytest.mark.parametrize("who", ["reader", "other-member"])
def test_others_may_not_deactivate(cloud: Cloud, owned: str, reader: str, who: str) -> None:
    user = reader if who == "reader" else project_user(cloud, "member")[0]
    with cloud.http(cloud.token(user)) as http:
        for action in ("deactivate", "reactivate"):
            resp = http.post(f"/image/v2/images/{owned}/actions/{action}")
            assert resp.status_code == 403, resp.text
            assert resp.json()["error"]["message"]
    assert status(cloud, owned) == "active"


def test_action_in_wrong_status(client: httpx.Client, image: dict) -> None:
    for action in ("deactivate", "reactivate"):
        resp = client.post(f"/v2/images/{image['id']}/actions/{action}")
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["message"] == \
            f"Not allowed to {action} image in status 'queued'"
    assert client.get(f"/v2/images/{image['id']}").json() == image


def test_action_on_missing_image(client: httpx.Client) -> None:
    resp = client.post(f"/v2/images/{uuid.uuid4()}/actions/deactivate")
    assert resp.status_code == 404
