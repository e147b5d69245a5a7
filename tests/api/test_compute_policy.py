"""Policy matrix: compute operations x role (admin/member/reader) x own/other project."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_compute_nonadmin import make_project, make_user
from tests.cloud import Cloud, unique

V = "/compute/v2.1"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPp8z8ceHsLUnLX15vB4B7NC4RPGYtj9pwXlISfeVtdR x"
ROLES = ("admin", "member", "reader")
OK, NO, GONE = 200, 403, 404

# name, method, path, body, microversion, expected status per role: (own, other).
MATRIX: list[tuple[str, str, str, Any, str, dict[str, tuple[int, int]]]] = [
    ("list flavors", "GET", "/flavors/detail", None, "2.61",
     dict.fromkeys(ROLES, (OK, OK))),
    ("show private flavor", "GET", "/flavors/{flavor}", None, "2.61",
     {"admin": (OK, OK), "member": (OK, GONE), "reader": (OK, GONE)}),
    ("flavor access list", "GET", "/flavors/{flavor}/os-flavor-access", None, "2.1",
     {"admin": (OK, OK), "member": (NO, NO), "reader": (NO, NO)}),
    ("extra specs index", "GET", "/flavors/{flavor}/os-extra_specs", None, "2.1",
     {"admin": (OK, OK), "member": (OK, GONE), "reader": (OK, GONE)}),
    ("extra specs create", "POST", "/flavors/{flavor}/os-extra_specs",
     {"extra_specs": {"hw:x": "1"}}, "2.1",
     {"admin": (OK, OK), "member": (NO, NO), "reader": (NO, NO)}),
    ("create flavor", "POST", "/flavors", "new-flavor", "2.1",
     {"admin": (OK, OK), "member": (NO, NO), "reader": (NO, NO)}),
    ("list keypairs", "GET", "/os-keypairs?user_id={user}", None, "2.10",
     {"admin": (OK, OK), "member": (OK, NO), "reader": (OK, NO)}),
    ("show quota", "GET", "/os-quota-sets/{project}", None, "2.57",
     {"admin": (OK, OK), "member": (OK, NO), "reader": (OK, NO)}),
    ("quota detail", "GET", "/os-quota-sets/{project}/detail", None, "2.57",
     {"admin": (OK, OK), "member": (OK, NO), "reader": (OK, NO)}),
    ("quota defaults", "GET", "/os-quota-sets/{project}/defaults", None, "2.57",
     dict.fromkeys(ROLES, (OK, OK))),
    ("update quota", "PUT", "/os-quota-sets/{project}", {"quota_set": {"cores": 30}}, "2.57",
     {"admin": (OK, OK), "member": (NO, NO), "reader": (NO, NO)}),
    ("reset quota", "DELETE", "/os-quota-sets/{project}", None, "2.57",
     {"admin": (202, 202), "member": (NO, NO), "reader": (NO, NO)}),
    ("show quota class", "GET", "/os-quota-class-sets/default", None, "2.57",
     dict.fromkeys(ROLES, (OK, OK))),
    ("update quota class", "PUT", "/os-quota-class-sets/default",
     {"quota_class_set": {"metadata_items": 128}}, "2.57",
     {"admin": (OK, OK), "member": (NO, NO), "reader": (NO, NO)}),
    ("limits", "GET", "/limits?tenant_id={project}", None, "2.57",
     {"admin": (OK, OK), "member": (OK, NO), "reader": (OK, NO)}),
    ("zones", "GET", "/os-availability-zone", None, "2.1", dict.fromkeys(ROLES, (OK, OK))),
    ("zones detail", "GET", "/os-availability-zone/detail", None, "2.1",
     {"admin": (OK, OK), "member": (NO, NO), "reader": (NO, NO)}),
    ("services", "GET", "/os-services", None, "2.53",
     {"admin": (OK, OK), "member": (NO, NO), "reader": (NO, NO)}),
    ("hypervisors", "GET", "/os-hypervisors/detail", None, "2.88",
     {"admin": (OK, OK), "member": (NO, NO), "reader": (NO, NO)}),
    ("hypervisor statistics", "GET", "/os-hypervisors/statistics", None, "2.87",
     {"admin": (OK, OK), "member": (NO, NO), "reader": (NO, NO)}),
    ("hosts", "GET", "/os-hosts", None, "2.1",
     {"admin": (OK, OK), "member": (NO, NO), "reader": (NO, NO)}),
    ("host update", "PUT", "/os-hosts/no-such-host", {"status": "enable"}, "2.1",
     {"admin": (GONE, GONE), "member": (NO, NO), "reader": (NO, NO)}),
    ("host power action", "GET", "/os-hosts/no-such-host/reboot", None, "2.1",
     {"admin": (GONE, GONE), "member": (NO, NO), "reader": (NO, NO)}),
    ("extensions", "GET", "/extensions", None, "2.1", dict.fromkeys(ROLES, (OK, OK))),
]


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> dict[str, dict[str, str]]:
    """Per role: its token, own project/user/private flavor, and another project's."""
    own_project, other_project = make_project(cloud), make_project(cloud)
    users = {"member": make_user(cloud, "member", own_project),
             "reader": make_user(cloud, "reader", own_project)}
    with cloud.http(cloud.token()) as admin:
        flavors = {}
        for key, project in (("own", own_project[1]), ("other", other_project[1])):
            body = {"flavor": {"name": unique("pol"), "ram": 64, "vcpus": 1, "disk": 0,
                               "os-flavor-access:is_public": False}}
            flavor_id = admin.post(f"{V}/flavors", json=body).json()["flavor"]["id"]
            admin.post(f"{V}/flavors/{flavor_id}/action",
                       json={"addTenantAccess": {"tenant": project}})
            flavors[key] = flavor_id
        admin_scope = admin.get("/identity/v3/auth/tokens",
                                headers={"X-Subject-Token": admin.headers["X-Auth-Token"]})
        admin_project = admin_scope.json()["token"]["project"]["id"]
        admin_user = admin_scope.json()["token"]["user"]["id"]
        other_user = admin.post("/identity/v3/users", json={"user": {
            "name": unique("pol"), "domain_id": "default"}}).json()["user"]["id"]
    world = {"admin": {"token": cloud.token(), "own_project": admin_project,
                       "own_user": admin_user, "own_flavor": flavors["own"]}}
    for role, name in users.items():
        token = cloud.token(name)
        with cloud.http(token) as client:
            info = client.get("/identity/v3/auth/tokens",
                              headers={"X-Subject-Token": token}).json()["token"]
        world[role] = {"token": token, "own_project": own_project[1],
                       "own_user": info["user"]["id"], "own_flavor": flavors["own"]}
    for entry in world.values():
        entry.update(other_project=other_project[1], other_user=other_user,
                     other_flavor=flavors["other"])
    return world


@pytest.mark.parametrize("row", MATRIX, ids=[r[0] for r in MATRIX])
@pytest.mark.parametrize("role", ROLES)
def test_policy(cloud: Cloud, world: dict, role: str, row: tuple) -> None:
    name, method, path, body, version, expected = row
    me = world[role]
    for index, whose in enumerate(("own", "other")):
        values = {"project": me[f"{whose}_project"], "user": me[f"{whose}_user"],
                  "flavor": me[f"{whose}_flavor"]}
        payload = body
        if body == "new-flavor":
            payload = {"flavor": {"name": unique("polnew"), "ram": 64, "vcpus": 1,
                                  "disk": 0}}
        with cloud.http(me["token"]) as client:
            resp = client.request(method, V + path.format(**values), json=payload,
                                  headers={"OpenStack-API-Version": f"compute {version}"})
        assert resp.status_code == expected[role][index], (name, role, whose, resp.text)
        if resp.status_code == NO:
            assert "Policy doesn't allow compute:" in resp.json()["forbidden"]["message"]
