"""Tokens: validation, revocation, scopes, key rotation, password changes."""

import httpx
import pytest

from tests.cloud import Cloud, unique


def _password_auth(name: str, password: str, scope: object = None) -> dict:
    auth: dict = {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": {"id": "default"}, "password": password}}}}
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


def _validate(client: httpx.Client, token: str, subject: str) -> httpx.Response:
    return client.get("/identity/v3/auth/tokens",
                      headers={"X-Auth-Token": token, "X-Subject-Token": subject})


def test_issue_shape(cloud: Cloud) -> None:
    with cloud.http() as client:
        resp = client.post("/identity/v3/auth/tokens", json=_password_auth(
            "admin", cloud.admin_password,
            {"project": {"name": "admin", "domain": {"name": "Default"}}}))
    assert resp.status_code == 201
    token = resp.json()["token"]
    assert resp.headers["X-Subject-Token"]
    assert token["expires_at"].endswith("Z") and "." in token["expires_at"]
    assert token["project"]["name"] == "admin"
    assert {r["name"] for r in token["roles"]} >= {"admin", "member", "reader"}
    assert {e["interface"] for s in token["catalog"] for e in s["endpoints"]} == {
        "public", "internal", "admin"}
    assert resp.headers["x-openstack-request-id"].startswith("req-")


def test_unscoped_and_domain_scoped(cloud: Cloud) -> None:
    project, user = unique("p"), unique("u")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-123456", user)
    with cloud.http() as client:
        resp = client.post("/identity/v3/auth/tokens", json=_password_auth(user, "pw-123456"))
        assert resp.status_code == 201
        body = resp.json()["token"]
        assert "project" not in body and "catalog" not in body
        # no role on the project: scoping fails
        resp = client.post("/identity/v3/auth/tokens", json=_password_auth(
            user, "pw-123456", {"project": {"name": project, "domain": {"id": "default"}}}))
        assert resp.status_code == 401
    cloud.openstack("role", "add", "--domain", "default", "--user", user, "reader")
    with cloud.http() as client:
        resp = client.post("/identity/v3/auth/tokens", json=_password_auth(
            user, "pw-123456", {"domain": {"id": "default"}}))
        assert resp.status_code == 201, resp.text
        assert resp.json()["token"]["domain"]["id"] == "default"


def test_validate_head_and_revoke(cloud: Cloud) -> None:
    admin = cloud.token()
    victim = cloud.token()
    with cloud.http() as client:
        assert _validate(client, admin, victim).status_code == 200
        head = client.head("/identity/v3/auth/tokens",
                           headers={"X-Auth-Token": admin, "X-Subject-Token": victim})
        assert head.status_code == 200
        gone = client.delete("/identity/v3/auth/tokens",
                             headers={"X-Auth-Token": admin, "X-Subject-Token": victim})
        assert gone.status_code == 204
        assert _validate(client, admin, victim).status_code == 404
        resp = client.get("/identity/v3/auth/catalog", headers={"X-Auth-Token": victim})
        assert resp.status_code == 401


def test_forged_and_garbage_tokens(cloud: Cloud) -> None:
    admin = cloud.token()
    forged = admin[:-8] + ("A" * 8 if not admin.endswith("A" * 8) else "B" * 8)
    with cloud.http() as client:
        for bad in (forged, "garbage", "x" * 5000):
            resp = client.get("/identity/v3/auth/catalog", headers={"X-Auth-Token": bad})
            assert resp.status_code == 401
            assert resp.json()["error"]["message"]
            assert "Keystone uri=" in resp.headers["www-authenticate"]


def test_key_rotation_keeps_tokens_until_pruned(cloud: Cloud) -> None:
    old = cloud.token()
    with cloud.http() as client:
        cloud.atwill("keys", "rotate")
        assert client.get("/identity/v3/auth/catalog",
                          headers={"X-Auth-Token": old}).status_code == 200
        new = cloud.token()
        assert client.get("/identity/v3/auth/catalog",
                          headers={"X-Auth-Token": new}).status_code == 200
        # max_active_keys=3 keeps one staged, one primary and one secondary key:
        # two more rotations retire the key that signed the old token.
        cloud.atwill("keys", "rotate")
        cloud.atwill("keys", "rotate")
        assert client.get("/identity/v3/auth/catalog",
                          headers={"X-Auth-Token": old}).status_code == 401
        assert client.get("/identity/v3/auth/catalog",
                          headers={"X-Auth-Token": cloud.token()}).status_code == 200


def test_password_change_revokes_and_is_never_returned(cloud: Cloud) -> None:
    project, user = unique("p"), unique("u")
    cloud.openstack("project", "create", project)
    created = cloud.openstack("user", "create", "--password", "first-pass", user, "-f", "json")
    assert "password" not in created and "password_hash" not in created
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "first-pass", project)
    before = cloud.token(user)
    cloud.openstack("user", "password", "set", "--original-password", "first-pass",
                    "--password", "second-pass", user=user)
    with cloud.http() as client:
        assert client.get("/identity/v3/auth/catalog",
                          headers={"X-Auth-Token": before}).status_code == 401
    cloud.add_user(user, "second-pass", project)
    assert cloud.token(user)
    assert "second-pass" not in cloud.log() and "first-pass" not in cloud.log()


def test_role_removal_takes_effect(cloud: Cloud) -> None:
    project, user = unique("p"), unique("u")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-abcdef", user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-abcdef", project)
    token = cloud.token(user)
    cloud.openstack("role", "remove", "--project", project, "--user", user, "member")
    with cloud.http() as client:
        assert client.get("/identity/v3/auth/catalog",
                          headers={"X-Auth-Token": token}).status_code == 401


def test_implied_role_grants_member(cloud: Cloud) -> None:
    project, user, role = unique("fabric"), unique("fabric"), unique("fabric")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "Fabric_123", user)
    cloud.openstack("role", "create", role)
    cloud.openstack("role", "add", "--project", project, "--user", user, role)
    cloud.add_user(user, "Fabric_123", project)
    with cloud.http() as client:
        token = cloud.token(user)
        resp = client.get("/identity/v3/auth/tokens",
                          headers={"X-Auth-Token": token, "X-Subject-Token": token})
        assert {r["name"] for r in resp.json()["token"]["roles"]} == {role}
    cloud.openstack("implied", "role", "create", role, "--implied-role", "member")
    rows = cloud.openstack("implied", "role", "list", "-f", "json")
    assert any(r["Prior Role Name"] == role and r["Implied Role Name"] == "member"
               for r in rows)
    with cloud.http() as client:
        token = cloud.token(user)
        resp = client.get("/identity/v3/auth/tokens",
                          headers={"X-Auth-Token": token, "X-Subject-Token": token})
        assert {r["name"] for r in resp.json()["token"]["roles"]} == {role, "member", "reader"}


@pytest.mark.parametrize("body, status", [
    ({}, 400),
    ({"auth": {}}, 400),
    ({"auth": {"identity": {"methods": []}}}, 400),
    ({"auth": {"identity": {"methods": ["password"], "password": {}}}}, 400),
    ({"auth": {"identity": {"methods": ["totp"]}}}, 401),
    ({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": "wrong"}}}}}, 401),
    ({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "nobody", "domain": {"id": "default"}, "password": "x"}}}}}, 401),
    ({"auth": {"identity": {"methods": ["token"], "token": {"id": "nope"}}}}, 401),
])
def test_bad_auth_requests(cloud: Cloud, body: dict, status: int) -> None:
    before = cloud.db_snapshot()
    with cloud.http() as client:
        resp = client.post("/identity/v3/auth/tokens", json=body)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error"]["message"]
    after = cloud.db_snapshot()
    identity = body.get("auth", {}).get("identity", {})
    if identity.get("password", {}).get("user", {}).get("name") == "admin":
        # A wrong password of a real user is counted for lockout, and only that changes.
        before.pop("users"), after.pop("users")
    assert after == before
