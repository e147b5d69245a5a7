"""Response shapes and status codes follow the requested compute microversion."""

from __future__ import annotations

import pytest

from tests.cloud import Cloud, unique


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


@pytest.fixture(scope="module")
def flavor(cloud: Cloud) -> str:
    with cloud.http(cloud.token()) as client:
        resp = client.post("/compute/v2.1/flavors", headers=mv("2.61"), json={"flavor": {
            "name": unique("shape"), "ram": 64, "vcpus": 1, "disk": 0, "id": None,
            "description": "shaped"}})
    assert resp.status_code == 200, resp.text
    return resp.json()["flavor"]["id"]


@pytest.mark.parametrize(("version", "present", "absent", "swap"), [
    ("2.1", set(), {"description", "extra_specs"}, ""),
    ("2.55", {"description"}, {"extra_specs"}, ""),
    ("2.61", {"description", "extra_specs"}, set(), ""),
    ("2.75", {"description", "extra_specs"}, set(), 0),
])
def test_flavor_shape(cloud: Cloud, flavor: str, version: str, present: set, absent: set,
                      swap: object) -> None:
    with cloud.http(cloud.token()) as client:
        resp = client.get(f"/compute/v2.1/flavors/{flavor}", headers=mv(version))
    body = resp.json()["flavor"]
    assert resp.headers["OpenStack-API-Version"] == f"compute {version}"
    assert resp.headers["X-OpenStack-Nova-API-Version"] == version and "Vary" in resp.headers
    assert present <= set(body) and not absent & set(body)
    assert body["swap"] == swap


def test_flavor_description_update_needs_2_55(cloud: Cloud, flavor: str) -> None:
    with cloud.http(cloud.token()) as client:
        old = client.put(f"/compute/v2.1/flavors/{flavor}",
                         json={"flavor": {"description": "x"}})
        new = client.put(f"/compute/v2.1/flavors/{flavor}", headers=mv("2.55"),
                         json={"flavor": {"description": "new"}})
    assert old.status_code == 404
    assert new.status_code == 200 and new.json()["flavor"]["description"] == "new"


def test_flavor_pagination_never_loops(cloud: Cloud) -> None:
    with cloud.http(cloud.token()) as client:
        for _ in range(3):
            client.post("/compute/v2.1/flavors", json={"flavor": {
                "name": unique("page"), "ram": 64, "vcpus": 1, "disk": 0}})
        total = len(client.get("/compute/v2.1/flavors").json()["flavors"])
        seen, url, pages = [], "/compute/v2.1/flavors/detail?limit=2", 0
        while url:
            body = client.get(url).json()
            seen += [f["id"] for f in body["flavors"]]
            nxt = body.get("flavors_links")
            url = nxt[0]["href"].removeprefix(cloud.url) if nxt else None
            pages += 1
            assert pages <= total
    assert len(seen) == len(set(seen)) == total


def test_flavor_filters_and_sort(cloud: Cloud) -> None:
    with cloud.http(cloud.token()) as client:
        big = client.get("/compute/v2.1/flavors/detail",
                         params={"minRam": 100000, "is_public": "None"}).json()["flavors"]
        by_ram = client.get("/compute/v2.1/flavors/detail",
                            params={"sort_key": "memory_mb", "sort_dir": "desc"}).json()
    assert all(f["ram"] >= 100000 for f in big)
    rams = [f["ram"] for f in by_ram["flavors"]]
    assert rams == sorted(rams, reverse=True)


@pytest.mark.parametrize(("version", "create", "delete", "has_type"), [
    ("2.1", 200, 202, False), ("2.2", 201, 204, True), ("2.92", 201, 204, True)])
def test_keypair_codes(cloud: Cloud, version: str, create: int, delete: int,
                       has_type: bool) -> None:
    name = unique("kpv")
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPp8z8ceHsLUnLX15vB4B7NC4RPGYtj9pwXlISfeVtdR x"
    with cloud.http(cloud.token()) as client:
        made = client.post("/compute/v2.1/os-keypairs", headers=mv(version),
                           json={"keypair": {"name": name, "public_key": key}})
        listed = client.get("/compute/v2.1/os-keypairs", headers=mv(version)).json()
        gone = client.delete(f"/compute/v2.1/os-keypairs/{name}", headers=mv(version))
    assert made.status_code == create and ("type" in made.json()["keypair"]) == has_type
    entry = next(k["keypair"] for k in listed["keypairs"] if k["keypair"]["name"] == name)
    assert ("type" in entry) == has_type
    assert gone.status_code == delete


def test_keypair_generation_ends_at_2_92(cloud: Cloud) -> None:
    with cloud.http(cloud.token()) as client:
        new = client.post("/compute/v2.1/os-keypairs", headers=mv("2.92"),
                          json={"keypair": {"name": unique("kp")}})
        name = unique("kp")
        old = client.post("/compute/v2.1/os-keypairs", headers=mv("2.91"),
                          json={"keypair": {"name": name}})
        client.delete(f"/compute/v2.1/os-keypairs/{name}")
    assert new.status_code == 400
    assert old.status_code == 201 and "PRIVATE KEY" in old.json()["keypair"]["private_key"]


def test_keypair_pagination_at_2_35(cloud: Cloud) -> None:
    names = sorted(unique("kpp") for _ in range(3))
    with cloud.http(cloud.token()) as client:
        for name in names:
            client.post("/compute/v2.1/os-keypairs", headers=mv("2.10"),
                        json={"keypair": {"name": name}})
        first = client.get("/compute/v2.1/os-keypairs", headers=mv("2.35"),
                           params={"limit": 1}).json()
        old = client.get("/compute/v2.1/os-keypairs", headers=mv("2.34"),
                         params={"limit": 1}).json()
        for name in names:
            client.delete(f"/compute/v2.1/os-keypairs/{name}")
    assert len(first["keypairs"]) == 1 and first["keypairs_links"][0]["rel"] == "next"
    assert len(old["keypairs"]) >= 3 and "keypairs_links" not in old


@pytest.mark.parametrize(("version", "present", "absent"), [
    ("2.1", {"floating_ips", "injected_files"}, set()),
    ("2.36", {"injected_files"}, {"floating_ips", "security_groups", "fixed_ips"}),
    ("2.57", {"cores", "server_groups"}, {"injected_files", "floating_ips"}),
])
def test_quota_and_limits_shapes(cloud: Cloud, version: str, present: set,
                                 absent: set) -> None:
    with cloud.http(cloud.token()) as client:
        project = client.get("/identity/v3/auth/projects").json()["projects"][0]["id"]
        quota = client.get(f"/compute/v2.1/os-quota-sets/{project}", headers=mv(version))
        limits = client.get("/compute/v2.1/limits", headers=mv(version)).json()
    body = quota.json()["quota_set"]
    assert body["id"] == project and present <= set(body) and not absent & set(body)
    absolute = limits["limits"]["absolute"]
    assert ("maxTotalFloatingIps" in absolute) == (version == "2.1")
    assert ("maxPersonality" in absolute) == (version != "2.57")
    assert limits["limits"]["rate"] == []


def test_extensions_list_what_is_served(cloud: Cloud) -> None:
    """Nova v2.1's compatibility list of extensions: the served ones, Nova's names."""
    with cloud.http(cloud.token()) as client:
        listed = client.get("/compute/v2.1/extensions")
        hosts = client.get("/compute/v2.1/extensions/os-hosts")
        unserved = client.get("/compute/v2.1/extensions/os-consoles")
    assert listed.status_code == 200
    keys = {"name", "alias", "description", "namespace", "updated", "links"}
    assert all(set(ext) == keys for ext in listed.json()["extensions"])
    assert hosts.json()["extension"]["name"] == "Hosts"
    assert hosts.json()["extension"]["updated"] == "2014-12-03T00:00:00Z"
    assert unserved.status_code == 404 and unserved.json()["itemNotFound"]["message"]
    shown = cloud.openstack("extension", "list", "--compute", "-f", "json")
    assert {"Name": "Keypairs", "Alias": "os-keypairs",
            "Description": "Keypair Support."} in shown
