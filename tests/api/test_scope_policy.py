"""Token scope across every service: unscoped, domain-scoped and other-project-admin tokens.

An unscoped token may only list its projects and get a scoped token (Keystone); a
project's admin is an admin of that project only; a domain admin is no cloud admin.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.cloud import Cloud, unique

PW = "pw-scope-123"


def _token(cloud: Cloud, name: str, scope: Any = None) -> str:
    auth: dict = {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": {"id": "default"}, "password": PW}}}}
    auth["scope"] = scope if scope is not None else "unscoped"
    with cloud.http() as client:
        resp = client.post("/identity/v3/auth/tokens", json={"auth": auth})
    assert resp.status_code == 201, resp.text
    return resp.headers["X-Subject-Token"]


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> dict[str, Any]:
    """Projects A and B with a private network and image in B; users and their tokens."""
    ids: dict[str, Any] = {}
    for key in ("A", "B"):
        ids[key] = cloud.openstack("project", "create", unique("scope" + key),
                                   "-f", "json")["id"]
    users = {"nobody": None, "a_member": ("--project", ids["A"], "member"),
             "a_admin": ("--project", ids["A"], "admin"),
             "d_admin": ("--domain", "default", "admin")}
    for key, grant in users.items():
        name = unique(key)
        ids["user_" + key] = cloud.openstack("user", "create", "--password", PW, name,
                                             "-f", "json")["id"]
        ids["name_" + key] = name
        if grant:
            cloud.openstack("role", "add", grant[0], grant[1], "--user", name, grant[2])
    with cloud.http(cloud.token()) as admin:
        # Resources of B made by the cloud admin on B's behalf.
        net = admin.post("/network/v2.0/networks", json={"network": {
            "name": unique("bnet"), "project_id": ids["B"]}})
        assert net.status_code == 201, net.text
        ids["b_net"] = net.json()["network"]["id"]
        image = admin.post("/image/v2/images", json={
            "name": unique("bimg"), "owner": ids["B"], "visibility": "private",
            "disk_format": "raw", "container_format": "bare"})
        assert image.status_code == 201, image.text
        ids["b_image"] = image.json()["id"]
    ids["tok_unscoped"] = _token(cloud, ids["name_nobody"])
    ids["tok_member_unscoped"] = _token(cloud, ids["name_a_member"])
    ids["tok_a_admin"] = _token(cloud, ids["name_a_admin"], {"project": {"id": ids["A"]}})
    ids["tok_d_admin"] = _token(cloud, ids["name_d_admin"], {"domain": {"id": "default"}})
    return ids


UNSCOPED = ("unscoped", "member_unscoped")
# (method, path, body, {caller: status}); {A}, {B}, {self}... are filled in.
MATRIX: list[tuple[str, str, Any, dict[str, int]]] = [
    # Project-scoped reads: nothing for a token without a project.
    ("GET", "/identity/v3/projects/{A}", None, {**dict.fromkeys(UNSCOPED, 403),
                                                 "d_admin": 403, "a_admin": 200}),
    ("GET", "/compute/v2.1/os-quota-sets/{A}/detail", None,
     {**dict.fromkeys(UNSCOPED, 403), "d_admin": 403, "a_admin": 200}),
    ("GET", "/compute/v2.1/limits", None, dict.fromkeys(UNSCOPED, 403)),
    ("GET", "/compute/v2.1/servers", None, dict.fromkeys(UNSCOPED, 403)),
    ("GET", "/compute/v2.1/flavors", None, dict.fromkeys(UNSCOPED, 403)),
    ("GET", "/compute/v2.1/os-keypairs", None, dict.fromkeys(UNSCOPED, 403)),
    ("GET", "/network/v2.0/quotas/{A}/details", None,
     {**dict.fromkeys(UNSCOPED, 403), "d_admin": 403, "a_admin": 200}),
    ("GET", "/network/v2.0/networks", None, dict.fromkeys(UNSCOPED, 403)),
    ("GET", "/network/v2.0/security-groups", None, dict.fromkeys(UNSCOPED, 403)),
    ("GET", "/image/v2/images", None, dict.fromkeys(UNSCOPED, 403)),
    ("GET", "/identity/v3/roles", None, dict.fromkeys(UNSCOPED, 403)),
    # What an unscoped token may do.
    ("GET", "/identity/v3/auth/projects", None, dict.fromkeys(UNSCOPED, 200)),
    ("GET", "/identity/v3/auth/domains", None, dict.fromkeys(UNSCOPED, 200)),
    ("GET", "/identity/v3/users/{self}", None, dict.fromkeys(UNSCOPED, 200)),
    ("GET", "/identity/v3/users/{self}/projects", None, dict.fromkeys(UNSCOPED, 200)),
    # An admin of project A or of a domain is no cloud admin.
    ("GET", "/identity/v3/projects", None, {"a_admin": 403, "d_admin": 403}),
    ("GET", "/identity/v3/projects/{B}", None, {"a_admin": 403, "d_admin": 403}),
    ("POST", "/identity/v3/projects", {"project": {"name": "x-{rand}"}},
     {"a_admin": 403, "d_admin": 403}),
    ("GET", "/identity/v3/users", None, {"a_admin": 403, "d_admin": 403}),
    ("PUT", "/identity/v3/projects/{B}/users/{user_a_admin}/roles/{admin_role}", None,
     {"a_admin": 403, "d_admin": 403}),
    ("PUT", "/compute/v2.1/os-quota-sets/{A}", {"quota_set": {"instances": 1000}},
     {"a_admin": 403, "d_admin": 403}),
    ("GET", "/compute/v2.1/os-quota-sets/{B}", None, {"a_admin": 403}),
    ("GET", "/compute/v2.1/os-hypervisors", None, {"a_admin": 403, "d_admin": 403}),
    ("POST", "/compute/v2.1/flavors", {"flavor": {"name": "x-{rand}", "ram": 64,
                                                  "vcpus": 1, "disk": 1}}, {"a_admin": 403}),
    ("GET", "/network/v2.0/quotas/{B}", None, {"a_admin": 403}),
    ("PUT", "/network/v2.0/quotas/{A}", {"quota": {"network": 1000}}, {"a_admin": 403}),
    ("POST", "/network/v2.0/networks", {"network": {"name": "x", "shared": True}},
     {"a_admin": 403}),
    ("GET", "/network/v2.0/networks/{b_net}", None, {"a_admin": 404}),
    ("GET", "/image/v2/images/{b_image}", None, {"a_admin": 404}),
    ("POST", "/image/v2/images", {"name": "x", "visibility": "public"}, {"a_admin": 403}),
    ("GET", "/cluster/v1/nodes", None, {"a_admin": 403, "d_admin": 403}),
]


def _cases():
    for method, path, body, expected in MATRIX:
        for who, status in expected.items():
            yield pytest.param(method, path, body, who, status, id=f"{method} {path} {who}")


@pytest.mark.parametrize("method, path, body, who, status", list(_cases()))
def test_scope_policy(cloud: Cloud, world: dict[str, Any], method: str, path: str,
                      body: Any, who: str, status: int) -> None:
    user = "a_member" if who == "member_unscoped" else "nobody" if who == "unscoped" else who
    fill = dict(world, self=world["user_" + user], rand=unique("r"),
                admin_role=_role_id(cloud, "admin"))
    import json

    payload = json.loads(json.dumps(body).replace("{rand}", fill["rand"])) if body else None
    before = cloud.db_snapshot() if status >= 400 else None
    with cloud.http(world["tok_" + who]) as client:
        resp = client.request(method, path.format(**fill), json=payload)
    assert resp.status_code == status, resp.text
    if status >= 400:
        assert "Traceback" not in resp.text and len(resp.text) > 20
        assert cloud.db_snapshot() == before


_ROLES: dict[str, str] = {}


def _role_id(cloud: Cloud, name: str) -> str:
    if name not in _ROLES:
        _ROLES[name] = cloud.openstack("role", "show", name, "-f", "json")["id"]
    return _ROLES[name]


def test_unscoped_refusal_says_why(cloud: Cloud, world: dict[str, Any]) -> None:
    with cloud.http(world["tok_member_unscoped"]) as client:
        resp = client.get(f"/identity/v3/projects/{world['A']}")
    assert resp.status_code == 403
    assert "unscoped" in resp.json()["error"]["message"]


def test_unscoped_token_gets_a_scoped_one(cloud: Cloud, world: dict[str, Any]) -> None:
    unscoped = world["tok_member_unscoped"]
    with cloud.http(unscoped) as client:
        mine = client.get("/identity/v3/auth/projects").json()["projects"]
        assert [p["id"] for p in mine] == [world["A"]]
        assert client.get("/identity/v3/auth/tokens",
                          headers={"X-Subject-Token": unscoped}).status_code == 200
        resp = client.post("/identity/v3/auth/tokens", json={"auth": {
            "identity": {"methods": ["token"], "token": {"id": unscoped}},
            "scope": {"project": {"id": world["A"]}}}})
        assert resp.status_code == 201, resp.text
    with cloud.http(resp.headers["X-Subject-Token"]) as client:
        assert client.get(f"/identity/v3/projects/{world['A']}").status_code == 200
        assert client.get("/compute/v2.1/servers").status_code == 200


def test_project_admin_sees_only_its_project(cloud: Cloud, world: dict[str, Any]) -> None:
    with cloud.http(world["tok_a_admin"]) as client:
        nets = client.get("/network/v2.0/networks").json()["networks"]
        images = client.get("/image/v2/images").json()["images"]
        servers = client.get("/compute/v2.1/servers/detail?all_tenants=1")
    assert world["b_net"] not in {n["id"] for n in nets}
    assert world["b_image"] not in {i["id"] for i in images}
    assert servers.status_code == 200
    assert all(s["tenant_id"] == world["A"] for s in servers.json()["servers"])


def test_cloud_admin_still_sees_everything(cloud: Cloud, world: dict[str, Any]) -> None:
    with cloud.http(cloud.token()) as client:
        assert client.get(f"/network/v2.0/networks/{world['b_net']}").status_code == 200
        assert client.get(f"/image/v2/images/{world['b_image']}").status_code == 200
        assert client.get("/identity/v3/projects").status_code == 200
        assert client.get("/cluster/v1/nodes").status_code == 200
