"""Servers created at once from several projects on one shared network (issue 19).

Each create's port takes the network's lowest free address in the create's transaction.
One project's creates are serialized (builds.create's lock), but creates from different
projects run side by side: on PostgreSQL two of them picked the same address and the one
committing second hit the (network, address) unique constraint, its client answered 409.
network/ipalloc.py now claims an address with INSERT ... ON CONFLICT DO NOTHING under a
try-lock per address, skipping those claimed by creates in flight (no retry of the
create; tests/unit/test_ipalloc_claims.py has the transaction-level cases). Here creates
from PROJECTS projects, SERVERS each, released by a barrier against a controller of the
module's own with two nodes joined through the real join API, must all be accepted and
get distinct addresses.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from tests.api.aggregate_nodes import beating_nodes, tiny_image
from tests.api.lockout_cloud import own_cloud
from tests.cloud import Cloud, unique

V = "/compute/v2.1"
PROJECTS, SERVERS, ROUNDS = 4, 3, 2


@dataclass
class Env:
    cloud: Cloud
    tokens: list[str]  # one per project
    flavor: str
    image: str
    network: str


def ok(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    return resp.json() if resp.content else {}


def scoped_tokens(cloud: Cloud, admin: str) -> list[str]:
    """A token for each of PROJECTS new projects (the admin a member there), quotas
    lifted."""
    out = []
    with cloud.http(admin) as client:
        me = ok(client.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": admin}),
                200)["token"]["user"]["id"]
        role = ok(client.get("/identity/v3/roles", params={"name": "member"}),
                  200)["roles"][0]["id"]
        for _ in range(PROJECTS):
            project = ok(client.post("/identity/v3/projects", json={"project": {
                "name": unique("addrproj"), "domain_id": "default"}}), 201)["project"]["id"]
            assert client.put(f"/identity/v3/projects/{project}/users/{me}/roles/"
                              f"{role}").status_code == 204
            ok(client.put(f"{V}/os-quota-sets/{project}", json={"quota_set": {
                "instances": -1, "cores": -1, "ram": -1}}), 200)
            resp = client.post("/identity/v3/auth/tokens", json={"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "admin", "domain": {"id": "default"},
                    "password": cloud.admin_password}}},
                "scope": {"project": {"id": project}}}})
            assert resp.status_code == 201, resp.text
            out.append(resp.headers["X-Subject-Token"])
    return out


@pytest.fixture(scope="module")
def env(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    for cloud in own_cloud(engine):
        tmp = tmp_path_factory.mktemp("addrrace")
        image = tiny_image(cloud, tmp, "addrimg", "--public")
        flavor = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus",
                                 "1", unique("addrflv"), "-f", "json")["id"]
        admin = cloud.token()
        with cloud.http(admin) as client:
            network = ok(client.post("/network/v2.0/networks", json={"network": {
                "name": unique("addrnet"), "shared": True}}), 201)["network"]["id"]
            ok(client.post("/network/v2.0/subnets", json={"subnet": {
                "network_id": network, "ip_version": 4, "cidr": "10.77.0.0/24",
                "name": unique("addrsub")}}), 201)
        with beating_nodes(cloud, tmp, "addra", "addrb"):
            yield Env(cloud, scoped_tokens(cloud, admin), flavor, image, network)


def create(env: Env, token: str) -> httpx.Response:
    with env.cloud.http(token) as client:
        return client.post(f"{V}/servers", json={"server": {
            "name": unique("addrsrv"), "flavorRef": env.flavor, "imageRef": env.image,
            "networks": [{"uuid": env.network}]}})


def race(env: Env, racers: int) -> list[httpx.Response]:
    """racers creates released together, spread over the projects."""
    start = threading.Barrier(racers)

    def one(index: int) -> httpx.Response:
        start.wait(timeout=30)
        return create(env, env.tokens[index % PROJECTS])

    with ThreadPoolExecutor(racers) as pool:
        return list(pool.map(one, range(racers)))


def test_concurrent_creates_from_several_projects_get_distinct_addresses(env: Env) -> None:
    racers = PROJECTS * SERVERS
    for _ in range(ROUNDS):
        answers = race(env, racers)
        assert [r.status_code for r in answers] == [202] * racers, \
            [r.text for r in answers if r.status_code != 202]
    with env.cloud.http(env.cloud.token()) as client:
        ports = ok(client.get("/network/v2.0/ports", params={
            "network_id": env.network, "device_owner": "compute:nova"}), 200)["ports"]
    addresses = [ip["ip_address"] for port in ports for ip in port["fixed_ips"]]
    assert len(ports) == racers * ROUNDS, [p["device_owner"] for p in ports]
    assert len(set(addresses)) == len(addresses) == racers * ROUNDS, sorted(addresses)


def test_a_create_whose_address_is_taken_leaves_no_server_behind(env: Env) -> None:
    """On PostgreSQL the server is recorded first and its port made in a second
    transaction (servers/create_steps.py): when the port cannot be made, the recorded
    server is deleted again, its quota given back, and the error answered as before."""
    token = env.tokens[0]
    with env.cloud.http(env.cloud.token()) as client:
        ok(client.post("/network/v2.0/ports", json={"port": {
            "network_id": env.network, "fixed_ips": [{"ip_address": "10.77.0.200"}]}}), 201)
    with env.cloud.http(token) as client:
        before = ok(client.get(f"{V}/servers"), 200)["servers"]
        used = ok(client.get(f"{V}/limits"), 200)["limits"]["absolute"]["totalInstancesUsed"]
        resp = client.post(f"{V}/servers", json={"server": {
            "name": unique("addrtaken"), "flavorRef": env.flavor, "imageRef": env.image,
            "networks": [{"uuid": env.network, "fixed_ip": "10.77.0.200"}]}})
        assert resp.status_code == 409, resp.text
        assert "10.77.0.200" in resp.text
        assert ok(client.get(f"{V}/servers"), 200)["servers"] == before
        assert ok(client.get(f"{V}/limits"), 200)["limits"]["absolute"][
            "totalInstancesUsed"] == used
