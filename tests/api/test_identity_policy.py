"""Policy matrix for identity: operation x role x ownership, and bad inputs."""

from __future__ import annotations

import pytest

from tests.cloud import Cloud, unique


@pytest.fixture(scope="module")
def people(cloud: Cloud) -> dict[str, str]:
    """Projects A and B; member and reader on A, member on B; their ids and tokens."""
    ids: dict[str, str] = {}
    for key in ("A", "B"):
        ids[key] = cloud.openstack("project", "create", unique("proj" + key), "-f", "json")["id"]
    for key, project, role in (("a_member", "A", "member"), ("a_reader", "A", "reader"),
                               ("b_member", "B", "member")):
        name = unique(key)
        ids[key] = cloud.openstack("user", "create", "--password", "pw-" + name, name,
                                   "-f", "json")["id"]
        cloud.openstack("role", "add", "--project", ids[project], "--user", name, role)
        cloud.add_user(name, "pw-" + name, cloud.openstack(
            "project", "show", ids[project], "-f", "json")["name"])
        ids["tok_" + key] = cloud.token(name)
    ids["tok_admin"] = cloud.token()
    ids["member_role"] = cloud.openstack("role", "show", "member", "-f", "json")["id"]
    return ids


# (method, path, body, {caller: expected status}); {A}, {B}, {a_member}... are filled in.
MATRIX = [
    ("GET", "/v3/projects", None, {"admin": 200, "a_member": 403, "a_reader": 403}),
    ("GET", "/v3/projects/{A}", None, {"admin": 200, "a_member": 200, "a_reader": 200,
                                       "b_member": 403}),
    ("POST", "/v3/projects", {"project": {"name": "new-{rand}"}},
     {"admin": 201, "a_member": 403, "a_reader": 403}),
    ("PATCH", "/v3/projects/{A}", {"project": {"description": "x"}},
     {"admin": 200, "a_member": 403, "a_reader": 403, "b_member": 403}),
    ("DELETE", "/v3/projects/{B}", None, {"a_member": 403, "b_member": 403}),
    ("GET", "/v3/users", None, {"admin": 200, "a_member": 403, "a_reader": 403}),
    ("GET", "/v3/users/{a_member}", None, {"admin": 200, "a_member": 200, "a_reader": 403,
                                           "b_member": 403}),
    ("POST", "/v3/users", {"user": {"name": "new-{rand}", "password": "secret-1"}},
     {"admin": 201, "a_member": 403, "a_reader": 403}),
    ("PATCH", "/v3/users/{a_reader}", {"user": {"email": "x@example.org"}},
     {"admin": 200, "a_member": 403, "a_reader": 403}),
    ("DELETE", "/v3/users/{b_member}", None, {"a_member": 403, "a_reader": 403}),
    ("GET", "/v3/users/{a_member}/projects", None, {"a_member": 200, "b_member": 403,
                                                    "admin": 200}),
    ("GET", "/v3/roles", None, {"admin": 200, "a_member": 200, "a_reader": 200}),
    ("POST", "/v3/roles", {"role": {"name": "new-{rand}"}},
     {"admin": 201, "a_member": 403, "a_reader": 403}),
    ("GET", "/v3/role_assignments", None, {"admin": 200, "a_member": 403, "a_reader": 403}),
    ("PUT", "/v3/projects/{A}/users/{a_reader}/roles/{member_role}", None,
     {"a_member": 403, "a_reader": 403, "b_member": 403}),
    ("GET", "/v3/domains", None, {"admin": 200, "a_member": 403}),
    ("POST", "/v3/domains", {"domain": {"name": "d-{rand}"}}, {"a_member": 403}),
    ("GET", "/v3/services", None, {"admin": 200, "a_member": 403, "a_reader": 403}),
    ("GET", "/v3/endpoints", None, {"admin": 200, "a_member": 403, "a_reader": 403}),
    ("GET", "/v3/regions", None, {"admin": 200, "a_member": 200, "a_reader": 200}),
    ("GET", "/v3/auth/projects", None, {"admin": 200, "a_member": 200, "a_reader": 200}),
    ("GET", "/v3/auth/catalog", None, {"admin": 200, "a_member": 200, "a_reader": 200}),
    ("GET", "/v3/role_inferences", None, {"admin": 200, "a_member": 403}),
]


def _cases():
    for method, path, body, expected in MATRIX:
        for who, status in expected.items():
            yield pytest.param(method, path, body, who, status, id=f"{method} {path} {who}")


@pytest.mark.parametrize("method, path, body, who, status", list(_cases()))
def test_identity_policy(cloud: Cloud, people: dict[str, str], method: str, path: str,
                         body: dict | None, who: str, status: int) -> None:
    fill = dict(people, rand=unique("r"))
    url = "/identity" + path.format(**fill)
    payload = None
    if body is not None:
        import json
        payload = json.loads(json.dumps(body).replace("{rand}", fill["rand"]))
    before = cloud.db_snapshot() if status >= 400 else None
    with cloud.http(people["tok_" + who]) as client:
        resp = client.request(method, url, json=payload)
    assert resp.status_code == status, resp.text
    if status >= 400:
        assert resp.json()["error"]["message"]
        assert cloud.db_snapshot() == before


def test_auth_projects_lists_only_own(cloud: Cloud, people: dict[str, str]) -> None:
    with cloud.http(people["tok_a_member"]) as client:
        projects = client.get("/identity/v3/auth/projects").json()["projects"]
    assert [p["id"] for p in projects] == [people["A"]]


BAD = [
    ("POST", "/v3/projects", b"{not json", 400),
    ("POST", "/v3/projects", b"[]", 400),
    ("POST", "/v3/projects", b'{"project": "x"}', 400),
    ("POST", "/v3/projects", b'{"project": {"name": 5}}', 400),
    ("POST", "/v3/projects", b'{"project": {"name": ""}}', 400),
    ("POST", "/v3/projects", b'{"project": {"name": "admin"}}', 409),
    ("POST", "/v3/projects", b'{"project": {"name": "x", "domain_id": "nope"}}', 400),
    ("POST", "/v3/projects", b'{"project": {"name": "x", "enabled": "yes"}}', 400),
    ("GET", "/v3/projects/does-not-exist", None, 404),
    ("PATCH", "/v3/projects/does-not-exist", b'{"project": {}}', 404),
    ("DELETE", "/v3/projects/does-not-exist", None, 404),
    ("POST", "/v3/users", b'{"user": {"name": "admin"}}', 409),
    ("POST", "/v3/users", b'{"user": {"name": "u", "password": 12}}', 400),
    ("POST", "/v3/users", b'{"user": {"name": "u", "default_project_id": "nope"}}', 400),
    ("GET", "/v3/users/nope", None, 404),
    ("POST", "/v3/roles", b'{"role": {"name": "admin"}}', 409),
    ("DELETE", "/v3/roles/nope", None, 404),
    ("PUT", "/v3/projects/nope/users/nope/roles/nope", None, 404),
    ("DELETE", "/v3/domains/default", None, 403),
    ("POST", "/v3/regions", b'{"region": {"id": "RegionOne"}}', 409),
    ("POST", "/v3/endpoints", b'{"endpoint": {"interface": "sideways", "url": "http://x", '
     b'"service_id": "x"}}', 400),
    ("GET", "/v3/nothing-here", None, 404),
    ("POST", "/v3/projects", b'{"project": {"name": "' + b"x" * 2_000_000 + b'"}}', 413),
]


@pytest.mark.parametrize("method, path, raw, status", BAD, ids=[f"{m} {p} {s}" for m, p, _, s
                                                                  in BAD])
def test_identity_bad_input(cloud: Cloud, method: str, path: str, raw: bytes | None,
                            status: int) -> None:
    before = cloud.db_snapshot()
    with cloud.http(cloud.token()) as client:
        resp = client.request(method, "/identity" + path, content=raw,
                              headers={"Content-Type": "application/json"})
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error"]["message"]
    assert "Traceback" not in resp.text
    after = cloud.db_snapshot()
    assert after == before
