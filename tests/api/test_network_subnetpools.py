"""Subnet pools: the CLI's commands, allocation from a pool, policy and visibility."""

from __future__ import annotations

import pytest

from tests.api.test_compute_nonadmin import make_user
from tests.cloud import Cloud, unique

V = "/network/v2.0"
POOL_KEYS = {"id", "name", "prefixes", "default_prefixlen", "min_prefixlen", "max_prefixlen",
             "default_quota", "shared", "is_default", "ip_version", "address_scope_id",
             "description", "tags", "project_id", "tenant_id", "revision_number",
             "created_at", "updated_at"}


@pytest.fixture(scope="module")
def member(cloud: Cloud) -> str:
    return make_user(cloud, "member")


def test_pool_lifecycle_through_the_cli(cloud: Cloud) -> None:
    pool, net = unique("pool"), unique("poolnet")
    made = cloud.openstack("subnet", "pool", "create", "--pool-prefix", "10.10.0.0/16",
                           "--default-prefix-length", "24", pool, "-f", "json")
    assert made["prefixes"] == ["10.10.0.0/16"] and made["default_prefixlen"] == 24
    assert made["min_prefixlen"] == 8 and made["max_prefixlen"] == 32
    assert made["ip_version"] == 4 and made["is_default"] is False
    cloud.openstack("network", "create", net)
    first = cloud.openstack("subnet", "create", "--subnet-pool", pool, "--network", net,
                            unique("s"), "-f", "json")
    assert first["cidr"] == "10.10.0.0/24" and first["subnetpool_id"] == made["id"]
    assert first["gateway_ip"] == "10.10.0.1"
    second = cloud.openstack("subnet", "create", "--subnet-pool", pool, "--network", net,
                             "--prefix-length", "26", unique("s"), "-f", "json")
    assert second["cidr"] == "10.10.1.0/26"
    inside = cloud.openstack("subnet", "create", "--subnet-pool", pool, "--network", net,
                             "--subnet-range", "10.10.7.0/24", unique("s"), "-f", "json")
    assert inside["cidr"] == "10.10.7.0/24"
    outside = cloud.openstack("subnet", "create", "--subnet-pool", pool, "--network", net,
                              "--subnet-range", "10.11.0.0/24", unique("s"), check=False)
    assert outside.returncode != 0 and "not within" in outside.stderr
    assert pool in {p["Name"] for p in cloud.openstack("subnet", "pool", "list", "-f", "json")}
    cloud.openstack("subnet", "pool", "set", "--pool-prefix", "10.20.0.0/16",
                    "--description", "two ranges", pool)
    shown = cloud.openstack("subnet", "pool", "show", pool, "-f", "json")
    assert sorted(shown["prefixes"]) == ["10.10.0.0/16", "10.20.0.0/16"]
    assert shown["description"] == "two ranges" and shown["revision_number"] == 1
    busy = cloud.openstack("subnet", "pool", "delete", pool, check=False)
    assert busy.returncode != 0 and "still allocated" in busy.stderr
    for subnet in (first, second, inside):
        cloud.openstack("subnet", "delete", subnet["id"])
    cloud.openstack("network", "delete", net)
    cloud.openstack("subnet", "pool", "delete", pool)
    assert pool not in {p["Name"] for p in cloud.openstack("subnet", "pool", "list",
                                                           "-f", "json")}


def test_body_exhaustion_prefix_actions_and_default_pool(cloud: Cloud) -> None:
    with cloud.http(cloud.token()) as client:
        resp = client.post(f"{V}/subnetpools", json={"subnetpool": {
            "name": unique("sp"), "prefixes": ["10.30.0.0/24"], "default_prefixlen": 25,
            "is_default": True, "shared": True, "tags": ["b", "a"]}})
        assert resp.status_code == 201, resp.text
        pool = resp.json()["subnetpool"]
        assert set(pool) == POOL_KEYS and pool["tags"] == ["a", "b"]
        assert pool["address_scope_id"] is None and pool["default_quota"] is None
        again = client.post(f"{V}/subnetpools", json={"subnetpool": {
            "name": unique("sp"), "prefixes": ["10.31.0.0/24"], "is_default": True}})
        assert again.status_code == 400 and "default" in again.text
        net = client.post(f"{V}/networks", json={"network": {"name": unique("spn")}}
                          ).json()["network"]["id"]
        made = []
        for _ in range(2):
            resp = client.post(f"{V}/subnets", json={"subnet": {
                "network_id": net, "ip_version": 4, "use_default_subnetpool": True}})
            assert resp.status_code == 201, resp.text
            made.append(resp.json()["subnet"])
        assert [s["cidr"] for s in made] == ["10.30.0.0/25", "10.30.0.128/25"]
        full = client.post(f"{V}/subnets", json={"subnet": {
            "network_id": net, "ip_version": 4, "subnetpool_id": pool["id"]}})
        assert full.status_code == 409
        assert full.json()["NeutronError"]["type"] == "SubnetAllocationError"
        resp = client.put(f"{V}/subnetpools/{pool['id']}/add_prefixes",
                          json={"prefixes": ["10.30.1.0/24", "10.40.0.0/24"]})
        assert resp.json() == {"prefixes": ["10.30.0.0/23", "10.40.0.0/24"]}
        resp = client.put(f"{V}/subnetpools/{pool['id']}/remove_prefixes",
                          json={"prefixes": ["10.30.0.0/24"]})
        assert resp.status_code == 400 and "in use" in resp.text
        resp = client.put(f"{V}/subnetpools/{pool['id']}/remove_prefixes",
                          json={"prefixes": ["10.40.0.0/24"]})
        assert resp.json() == {"prefixes": ["10.30.0.0/23"]}
        third = client.post(f"{V}/subnets", json={"subnet": {
            "network_id": net, "ip_version": 4, "subnetpool_id": pool["id"]}})
        assert third.json()["subnet"]["cidr"] == "10.30.1.0/25"
        for bad in ({"prefixes": []}, {"prefixes": ["10.0.0.0/8", "fd00::/8"]},
                    {"prefixes": ["10.0.0.0/8"], "ip_version": 4},
                    {"prefixes": ["10.0.0.0/8"], "min_prefixlen": 24, "max_prefixlen": 16},
                    {"prefixes": ["10.0.0.0/8"], "address_scope_id": "x"}):
            resp = client.post(f"{V}/subnetpools", json={"subnetpool": bad})
            assert resp.status_code == 400, (bad, resp.text)
        for subnet in [*made, third.json()["subnet"]]:
            assert client.delete(f"{V}/subnets/{subnet['id']}").status_code == 204
        assert client.delete(f"{V}/networks/{net}").status_code == 204
        assert client.delete(f"{V}/subnetpools/{pool['id']}").status_code == 204
        assert client.get(f"{V}/subnetpools/{pool['id']}").status_code == 404


def test_policy_and_visibility(cloud: Cloud, member: str) -> None:
    with cloud.http(cloud.token()) as admin:
        shared = admin.post(f"{V}/subnetpools", json={"subnetpool": {
            "name": unique("shared"), "prefixes": ["10.50.0.0/16"], "shared": True,
            "default_prefixlen": 24}}).json()["subnetpool"]
        private = admin.post(f"{V}/subnetpools", json={"subnetpool": {
            "name": unique("private"), "prefixes": ["10.51.0.0/16"]}}).json()["subnetpool"]
    with cloud.http(cloud.token(member)) as client:
        for extra in ({"shared": True}, {"is_default": True}):
            resp = client.post(f"{V}/subnetpools", json={"subnetpool": {
                "name": unique("no"), "prefixes": ["10.52.0.0/16"], **extra}})
            assert resp.status_code == 403, (extra, resp.text)
        own = client.post(f"{V}/subnetpools", json={"subnetpool": {
            "name": unique("own"), "prefixes": ["10.53.0.0/16"]}})
        assert own.status_code == 201
        seen = {p["id"] for p in client.get(f"{V}/subnetpools").json()["subnetpools"]}
        assert {shared["id"], own.json()["subnetpool"]["id"]} <= seen
        assert private["id"] not in seen
        assert client.get(f"{V}/subnetpools/{private['id']}").status_code == 404
        assert client.put(f"{V}/subnetpools/{shared['id']}", json={"subnetpool": {
            "name": "mine"}}).status_code == 403
        assert client.delete(f"{V}/subnetpools/{shared['id']}").status_code == 403
        net = client.post(f"{V}/networks", json={"network": {"name": unique("m")}}
                          ).json()["network"]["id"]
        subnet = client.post(f"{V}/subnets", json={"subnet": {
            "network_id": net, "ip_version": 4, "subnetpool_id": shared["id"]}})
        assert subnet.status_code == 201 and subnet.json()["subnet"]["cidr"] == "10.50.0.0/24"
        assert client.post(f"{V}/subnets", json={"subnet": {
            "network_id": net, "ip_version": 4, "subnetpool_id": private["id"]}}
            ).status_code == 404
        assert client.delete(f"{V}/subnets/{subnet.json()['subnet']['id']}").status_code == 204
        assert client.delete(f"{V}/networks/{net}").status_code == 204
        assert client.delete(f"{V}/subnetpools/{own.json()['subnetpool']['id']}"
                             ).status_code == 204
    with cloud.http(cloud.token()) as admin:
        for pool in (shared, private):
            assert admin.delete(f"{V}/subnetpools/{pool['id']}").status_code == 204


def test_extensions_and_router_external_on_subnets(cloud: Cloud, member: str) -> None:
    with cloud.http(cloud.token(member)) as client:
        aliases = {e["alias"] for e in client.get(f"{V}/extensions").json()["extensions"]}
        assert {"subnet_allocation", "default-subnetpools", "subnet-external-network"} <= aliases
        public = client.get(f"{V}/networks", params={"name": "public"}).json()["networks"][0]
        subnets = client.get(f"{V}/subnets", params={"network_id": public["id"]}
                             ).json()["subnets"]
        assert subnets and all(s["router:external"] is True for s in subnets)
        net = client.post(f"{V}/networks", json={"network": {"name": unique("int")}}
                          ).json()["network"]["id"]
        own = client.post(f"{V}/subnets", json={"subnet": {
            "network_id": net, "ip_version": 4, "cidr": "10.54.0.0/24"}}).json()["subnet"]
        assert own["router:external"] is False
        assert client.get(f"{V}/subnets", params={"router:external": "true"}).json()[
            "subnets"] == subnets
        assert client.delete(f"{V}/subnets/{own['id']}").status_code == 204
        assert client.delete(f"{V}/networks/{net}").status_code == 204
