"""Compute as non-admin users through the real CLI: isolation and clear 403s."""

from __future__ import annotations

import pytest

from tests.cloud import Cloud, unique

PASSWORD = "Compute_123"


def make_project(cloud: Cloud) -> tuple[str, str]:
    """A new project's (name, id), made through the identity API."""
    name = unique("cproj")
    with cloud.http(cloud.token()) as client:
        resp = client.post("/identity/v3/projects", json={"project": {"name": name}})
    assert resp.status_code == 201, resp.text
    return name, resp.json()["project"]["id"]


def make_user(cloud: Cloud, role: str, project: tuple[str, str] | None = None) -> str:
    """A user with role on project (a new one if not given), registered with the harness."""
    project_name, project_id = project or make_project(cloud)
    name = unique(f"c{role}")
    with cloud.http(cloud.token()) as client:
        user = client.post("/identity/v3/users", json={"user": {
            "name": name, "password": PASSWORD, "domain_id": "default"}}).json()["user"]
        role_id = client.get("/identity/v3/roles", params={"name": role}).json()["roles"][0]["id"]
        resp = client.put(f"/identity/v3/projects/{project_id}/users/{user['id']}/roles/{role_id}")
    assert resp.status_code == 204, resp.text
    cloud.add_user(name, PASSWORD, project_name)
    return name


@pytest.fixture(scope="module")
def member(cloud: Cloud) -> str:
    return make_user(cloud, "member")


def test_member_sees_public_and_own_private_flavors_only(cloud: Cloud, member: str) -> None:
    own = cloud.users[member]["project"]
    mine, theirs, public = unique("priv-mine"), unique("priv-theirs"), unique("pub")
    cloud.openstack("flavor", "create", "--ram", "512", "--vcpus", "1", public)
    cloud.openstack("flavor", "create", "--ram", "512", "--vcpus", "1", "--private",
                    "--project", own, mine)
    cloud.openstack("flavor", "create", "--ram", "512", "--vcpus", "1", "--private", theirs)
    names = {f["Name"] for f in cloud.openstack("flavor", "list", "--all", "-f", "json",
                                                user=member)}
    assert {mine, public} <= names and theirs not in names
    assert cloud.openstack("flavor", "show", mine, "-f", "json", user=member)["name"] == mine
    hidden = cloud.openstack("flavor", "show", theirs, user=member, check=False)
    assert hidden.returncode != 0 and "No Flavor found" in hidden.stderr
    for name in (mine, theirs, public):
        cloud.openstack("flavor", "delete", name)


@pytest.mark.parametrize("args", [
    ("flavor", "create", "--ram", "512", "--vcpus", "1", "nope"),
    ("quota", "set", "--cores", "5", "{own}"),
    ("hypervisor", "list"),
    ("compute", "service", "list"),
])
def test_admin_only_commands_are_forbidden(cloud: Cloud, member: str, args: tuple) -> None:
    # The member's own project by id, so the identity lookup succeeds and compute decides.
    own = cloud.openstack("token", "issue", "-f", "json", user=member)["project_id"]
    proc = cloud.openstack(*(a.format(own=own) for a in args), user=member, check=False)
    assert proc.returncode != 0
    assert "403" in proc.stderr and "Policy doesn't allow compute:" in proc.stderr, proc.stderr


def test_keypairs_are_per_user(cloud: Cloud, member: str) -> None:
    other = make_user(cloud, "member")
    name = unique("kp")
    cloud.openstack("keypair", "create", name, user=member)
    assert [k["Name"] for k in cloud.openstack("keypair", "list", "-f", "json",
                                               user=member)] == [name]
    assert cloud.openstack("keypair", "list", "-f", "json", user=other) == []
    assert cloud.openstack("keypair", "show", name, user=other, check=False).returncode != 0
    assert cloud.openstack("keypair", "delete", name, user=other, check=False).returncode != 0
    cloud.openstack("keypair", "delete", name, user=member)


def test_member_reads_own_quota_and_limits_not_others(cloud: Cloud, member: str) -> None:
    # Without a project argument OSC uses the token's own project (no identity lookup).
    rows = cloud.openstack("quota", "show", "-f", "json", user=member)
    assert {r["Resource"] for r in rows} >= {"cores", "instances", "ram"}
    limits = {r["Name"]: r["Value"] for r in cloud.openstack(
        "limits", "show", "--absolute", "-f", "json", user=member)}
    assert limits["max_total_cores"] == 20 and limits["total_cores_used"] == 0
    with cloud.http(cloud.token(member)) as client:
        other = client.get("/compute/v2.1/limits", params={"tenant_id": "someone-else"})
        quota = client.get("/compute/v2.1/os-quota-sets/someone-else")
    assert other.status_code == quota.status_code == 403
    assert "compute:limits:other_project" in other.json()["forbidden"]["message"]


def test_member_availability_zone_list(cloud: Cloud, member: str) -> None:
    # The detailed listing is admin-only; OSC falls back to the plain one on 403.
    zones = cloud.openstack("availability", "zone", "list", "-f", "json", user=member)
    assert all(z["Zone Status"] in ("available", "not available") for z in zones)
