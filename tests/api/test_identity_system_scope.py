"""Keystone's system scope through the real CLI and HTTP: system role assignments,
system-scoped tokens, and what a system admin and a system reader may do."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atwill.devcloud_forkserver import cli_forks
from tests.cloud import BIN, Cloud, unique

PW = "pw-System-123"
SYSTEM = {"system": {"all": True}}


def system_cli(cloud: Cloud, user: str, *args: str, check: bool = True) -> Any:
    """The real openstack CLI as user with --os-system-scope all (no project anywhere)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    cmd = [str(BIN / "openstack"), "--os-auth-url", f"{cloud.url}/identity",
           "--os-identity-api-version", "3", "--os-username", user, "--os-password", PW,
           "--os-user-domain-id", "default", "--os-system-scope", "all",
           "--os-region-name", "RegionOne",
           *(["--os-cacert", cloud.cacert] if cloud.tls else []), *args]
    if os.environ.get("ATWILL_TEST_CLI_FORK", "1") == "1":  # as Cloud.openstack runs it
        proc = cli_forks().run(cmd, env, timeout=120)
    else:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if not check:
        return proc
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if "json" in args else proc.stdout


def password_token(cloud: Cloud, user: str, scope: Any, password: str = PW) -> Any:
    auth = {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}}, "scope": scope}
    with cloud.http() as client:
        return client.post("/identity/v3/auth/tokens", json={"auth": auth})


@pytest.fixture(scope="module")
def world(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A system admin, a system reader, a user with no system role, and a project B with a
    member and one server (in ERROR: no nodes), a private image and a private network."""
    ids: dict[str, Any] = {"project": unique("sysB")}
    ids["project_id"] = cloud.openstack("project", "create", ids["project"], "-f", "json")["id"]
    for key in ("sadmin", "sreader", "plain", "member"):
        ids[key] = unique(key)
        ids[key + "_id"] = cloud.openstack("user", "create", "--password", PW, ids[key],
                                           "-f", "json")["id"]
    cloud.openstack("role", "add", "--system", "all", "--user", ids["sadmin"], "admin")
    cloud.openstack("role", "add", "--system", "all", "--user", ids["sreader"], "reader")
    cloud.openstack("role", "add", "--project", ids["project"], "--user", ids["member"],
                    "member")
    cloud.openstack("role", "add", "--project", ids["project"], "--user", ids["plain"],
                    "member")
    cloud.add_user(ids["member"], PW, ids["project"])
    ids["flavor"] = unique("sysflavor")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1",
                    ids["flavor"])
    disk: Path = tmp_path_factory.mktemp("sysimg") / "disk.img"
    disk.write_bytes(os.urandom(64 * 1024))
    ids["image"] = cloud.openstack("image", "create", "--file", str(disk), "--disk-format",
                                   "raw", "--container-format", "bare", "--private",
                                   unique("sysimg"), "-f", "json", user=ids["member"])["id"]
    ids["network"] = cloud.openstack("network", "create", unique("sysnet"), "-f", "json",
                                     user=ids["member"])["id"]
    ids["server"] = cloud.openstack("server", "create", "--flavor", ids["flavor"], "--image",
                                    ids["image"], "--no-network", unique("syssrv"), "-f",
                                    "json", user=ids["member"])["id"]
    yield ids
    cloud.openstack("server", "delete", "--wait", ids["server"], user=ids["member"])
    cloud.openstack("network", "delete", ids["network"], user=ids["member"])
    cloud.openstack("image", "delete", ids["image"], user=ids["member"])
    cloud.openstack("flavor", "delete", ids["flavor"])
    for key in ("sadmin", "sreader", "plain", "member"):
        cloud.openstack("user", "delete", ids[key + "_id"])
    cloud.openstack("project", "delete", ids["project_id"])


def test_system_grants_through_the_cli(cloud: Cloud, world: dict[str, Any]) -> None:
    listed = cloud.openstack("role", "assignment", "list", "--system", "all", "--names",
                             "-f", "json")
    pairs = {(a["User"], a["Role"], a["System"]) for a in listed}
    assert {(f"{world['sadmin']}@Default", "admin", "all"),
            (f"{world['sreader']}@Default", "reader", "all"),
            ("admin@Default", "admin", "all")} <= pairs  # bootstrap's, as keystone-manage
    assert all(a["Project"] == "" and a["Domain"] == "" for a in listed)
    # Without the system filter, system and project assignments are listed together.
    mine = cloud.openstack("role", "assignment", "list", "--user", world["sreader"],
                           "-f", "json")
    assert [(a["Role"], a["System"]) for a in mine] == [
        (cloud.openstack("role", "show", "reader", "-f", "json")["id"], "all")]
    projects = cloud.openstack("role", "assignment", "list", "--project", world["project"],
                               "-f", "json")
    assert projects and all(a["System"] == "" for a in projects)


def test_system_token_through_the_cli(cloud: Cloud, world: dict[str, Any]) -> None:
    token = system_cli(cloud, world["sadmin"], "token", "issue", "-f", "json")
    assert token["user_id"] == world["sadmin_id"] and "project_id" not in token
    assert token.get("system") == "all", token  # how OSC prints {"all": true}
    refused = system_cli(cloud, world["plain"], "token", "issue", check=False)
    assert refused.returncode != 0 and "401" in refused.stderr, refused.stderr


def test_system_token_body_and_validation(cloud: Cloud, world: dict[str, Any]) -> None:
    resp = password_token(cloud, world["sreader"], SYSTEM)
    assert resp.status_code == 201, resp.text
    token = resp.json()["token"]
    assert token["system"] == {"all": True}
    assert "project" not in token and "domain" not in token
    assert [r["name"] for r in token["roles"]] == ["reader"]
    assert {e["type"] for e in token["catalog"]} >= {"identity", "compute"}
    admin = password_token(cloud, world["sadmin"], SYSTEM).json()["token"]
    # admin implies member implies reader, as Keystone's default roles.
    assert {r["name"] for r in admin["roles"]} == {"admin", "member", "reader"}
    subject = resp.headers["X-Subject-Token"]
    for caller in (subject, cloud.token()):
        with cloud.http(caller) as client:
            check = client.get("/identity/v3/auth/tokens",
                               headers={"X-Subject-Token": subject})
        assert check.status_code == 200, check.text
        assert check.json()["token"]["system"] == {"all": True}
    with cloud.http(subject) as client:
        assert client.get("/identity/v3/auth/system").json()["system"] == [{"all": True}]
        assert client.get("/identity/v3/auth/catalog").status_code == 200


@pytest.mark.parametrize("scope, status", [
    (SYSTEM, 401),  # the user has no role on the system
    ({"system": {"all": False}}, 400),
    ({"system": {"all": True}, "project": {"id": "x"}}, 400),
])
def test_system_token_refusals(cloud: Cloud, world: dict[str, Any], scope: Any,
                               status: int) -> None:
    resp = password_token(cloud, world["plain"], scope)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["message"]


def test_project_and_unscoped_tokens_are_unaffected(cloud: Cloud,
                                                    world: dict[str, Any]) -> None:
    project = password_token(cloud, world["plain"], {"project": {"id": world["project_id"]}})
    assert project.status_code == 201 and "system" not in project.json()["token"]
    unscoped = password_token(cloud, world["sreader"], "unscoped")
    assert unscoped.status_code == 201 and "system" not in unscoped.json()["token"]
    with cloud.http(unscoped.headers["X-Subject-Token"]) as client:
        assert client.get("/identity/v3/auth/system").json()["system"] == [{"all": True}]
        assert client.get("/compute/v2.1/servers").status_code == 403
    with cloud.http(project.headers["X-Subject-Token"]) as client:
        assert client.get("/identity/v3/auth/system").json()["system"] == []
        assert client.get("/identity/v3/projects").status_code == 403
        assert client.get("/identity/v3/role_assignments",
                          params={"scope.system": "all"}).status_code == 403


def _ids(cloud: Cloud, name: str, *names: str) -> tuple[str, str]:
    with cloud.http(cloud.token()) as client:
        users = client.get("/identity/v3/users", params={"name": name}).json()["users"]
        role = client.get("/identity/v3/roles", params={"name": names[0]}).json()["roles"]
    return users[0]["id"], role[0]["id"]


def test_system_grant_api(cloud: Cloud, world: dict[str, Any]) -> None:
    user_id, member_id = _ids(cloud, world["plain"], "member")
    path = f"/identity/v3/system/users/{user_id}/roles"
    with cloud.http(cloud.token()) as client:
        assert client.head(f"{path}/{member_id}").status_code == 404
        assert client.get(f"{path}/{member_id}").status_code == 404
        assert client.put(f"{path}/{member_id}").status_code == 204
        assert client.put(f"{path}/{member_id}").status_code == 204  # idempotent
        assert client.head(f"{path}/{member_id}").status_code == 204
        assert client.get(f"{path}/{member_id}").status_code == 204
        roles = client.get(path).json()["roles"]
        assert [r["name"] for r in roles] == ["member"]
    token = password_token(cloud, world["plain"], SYSTEM)
    assert token.status_code == 201
    assert {r["name"] for r in token.json()["token"]["roles"]} == {"member", "reader"}
    with cloud.http(cloud.token()) as client:
        assert client.delete(f"{path}/{member_id}").status_code == 204
        assert client.delete(f"{path}/{member_id}").status_code == 404
        assert client.get(path).json()["roles"] == []
    # Removing the role ends the tokens it gave (within the validation cache's life).
    time.sleep(3.2)
    with cloud.http(token.headers["X-Subject-Token"]) as client:
        assert client.get("/identity/v3/auth/system").status_code == 401


@pytest.mark.parametrize("method", ["PUT", "HEAD", "GET", "DELETE"])
def test_system_grant_bad_ids(cloud: Cloud, world: dict[str, Any], method: str) -> None:
    user_id, role_id = _ids(cloud, world["plain"], "reader")
    before = cloud.db_snapshot()["system_role_assignments"]
    with cloud.http(cloud.token()) as client:
        for path in (f"/identity/v3/system/users/{user_id}/roles/nosuchrole",
                     f"/identity/v3/system/users/nosuchuser/roles/{role_id}"):
            resp = client.request(method, path)
            assert resp.status_code == 404, (path, resp.text)
            if method != "HEAD":
                assert "Could not find" in resp.json()["error"]["message"]
        assert client.get("/identity/v3/system/users/nosuchuser/roles").status_code == 404
        bad = client.get("/identity/v3/role_assignments", params={"scope.system": "some"})
        assert bad.status_code == 400
    assert cloud.db_snapshot()["system_role_assignments"] == before


def test_only_admins_grant_system_roles(cloud: Cloud, world: dict[str, Any]) -> None:
    user_id, role_id = _ids(cloud, world["plain"], "admin")
    path = f"/identity/v3/system/users/{user_id}/roles/{role_id}"
    reader = password_token(cloud, world["sreader"], SYSTEM).headers["X-Subject-Token"]
    member = cloud.token(world["member"])
    for token in (reader, member):
        with cloud.http(token) as client:
            assert client.put(path).status_code == 403
    with cloud.http(reader) as client:  # a system reader may look, not change
        assert client.head(path).status_code == 404
        assert client.get(f"/identity/v3/system/users/{user_id}/roles").status_code == 200


def test_system_reader_reads_every_project_and_changes_nothing(
        cloud: Cloud, world: dict[str, Any]) -> None:
    reader = world["sreader"]
    servers = system_cli(cloud, reader, "server", "list", "--all-projects", "-f", "json")
    assert world["server"] in [s["ID"] for s in servers]
    shown = system_cli(cloud, reader, "server", "show", world["server"], "-f", "json")
    assert shown["id"] == world["server"]
    projects = system_cli(cloud, reader, "project", "list", "-f", "json")
    assert world["project"] in [p["Name"] for p in projects]
    networks = system_cli(cloud, reader, "network", "list", "-f", "json")
    assert world["network"] in [n["ID"] for n in networks]
    images = system_cli(cloud, reader, "image", "list", "-f", "json")
    assert world["image"] in [i["ID"] for i in images]
    before = cloud.db_snapshot()
    for args in (("server", "delete", world["server"]),
                 ("server", "stop", world["server"]),
                 ("network", "delete", world["network"]),
                 ("project", "create", unique("nope")),
                 ("image", "set", "--name", "renamed", world["image"])):
        proc = system_cli(cloud, reader, *args, check=False)
        assert proc.returncode != 0 and "403" in proc.stderr, (args, proc.stderr)
    after = cloud.db_snapshot()
    assert {k: v for k, v in after.items() if k != "revocations"} == \
        {k: v for k, v in before.items() if k != "revocations"}


def test_system_tokens_cannot_create_project_resources(cloud: Cloud,
                                                       world: dict[str, Any]) -> None:
    for user in (world["sadmin"], world["sreader"]):
        proc = system_cli(cloud, user, "server", "create", "--flavor", world["flavor"],
                          "--image", world["image"], "--no-network", unique("nope"),
                          check=False)
        assert proc.returncode != 0 and "403" in proc.stderr, proc.stderr
        assert "project-scoped token" in proc.stderr


def test_system_admin_is_the_cloud_admin(cloud: Cloud, world: dict[str, Any]) -> None:
    admin = world["sadmin"]
    assert system_cli(cloud, admin, "hypervisor", "list", "-f", "json") is not None
    users = system_cli(cloud, admin, "user", "list", "-f", "json")
    assert world["plain"] in [u["Name"] for u in users]
    name = unique("sysproj")
    made = system_cli(cloud, admin, "project", "create", name, "-f", "json")
    system_cli(cloud, admin, "project", "delete", made["id"])
    servers = system_cli(cloud, admin, "server", "list", "--all-projects", "-f", "json")
    assert world["server"] in [s["ID"] for s in servers]
