"""Isolation between projects and the policy matrix: operation x role x own/other project."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_compute_nonadmin import make_project, make_user
from tests.cloud import Cloud, unique

V = "/network/v2.0"
ROLES = ("admin", "member", "reader")
OK, MADE, GONE, NO, DONE = 200, 201, 404, 403, 204


def make_world(cloud: Cloud, project: tuple[str, str]) -> dict[str, str]:
    """A network, subnet, port, router and group in project, made by the admin."""
    pid = project[1]
    with cloud.http(cloud.token()) as admin:
        net = admin.post(f"{V}/networks", json={"network": {
            "name": unique("pol"), "project_id": pid}}).json()["network"]["id"]
        sub = admin.post(f"{V}/subnets", json={"subnet": {
            "network_id": net, "cidr": "10.9.0.0/24", "ip_version": 4,
            "project_id": pid}}).json()["subnet"]["id"]
        port = admin.post(f"{V}/ports", json={"port": {
            "network_id": net, "project_id": pid}}).json()["port"]["id"]
        router = admin.post(f"{V}/routers", json={"router": {
            "name": unique("pol"), "project_id": pid}}).json()["router"]["id"]
        group = admin.post(f"{V}/security-groups", json={"security_group": {
            "name": unique("pol"), "project_id": pid}}).json()["security_group"]["id"]
    return {"project": pid, "network": net, "subnet": sub, "port": port, "router": router,
            "group": group}


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> dict[str, Any]:
    own, other = make_project(cloud), make_project(cloud)
    users = {"member": make_user(cloud, "member", own), "reader": make_user(cloud, "reader", own)}
    tokens = {"admin": cloud.token(), **{r: cloud.token(u) for r, u in users.items()}}
    return {"tokens": tokens, "own": make_world(cloud, own), "other": make_world(cloud, other),
            "users": users}


# name, method, path, body, expected per role: (own, other)
MATRIX: list[tuple[str, str, str, Any, dict[str, tuple[int, int]]]] = [
    ("show network", "GET", "/networks/{network}", None,
     {"admin": (OK, OK), "member": (OK, GONE), "reader": (OK, GONE)}),
    ("update network", "PUT", "/networks/{network}", {"network": {"description": "d"}},
     {"admin": (OK, OK), "member": (OK, GONE), "reader": (NO, GONE)}),
    ("create network", "POST", "/networks", {"network": {"project_id": "{project}"}},
     {"admin": (MADE, MADE), "member": (MADE, NO), "reader": (NO, NO)}),
    ("create external network", "POST", "/networks",
     {"network": {"project_id": "{project}", "router:external": True}},
     {"admin": (MADE, MADE), "member": (NO, NO), "reader": (NO, NO)}),
    ("create flat network", "POST", "/networks",
     {"network": {"project_id": "{project}", "provider:network_type": "vxlan"}},
     {"admin": (MADE, MADE), "member": (NO, NO), "reader": (NO, NO)}),
    ("show subnet", "GET", "/subnets/{subnet}", None,
     {"admin": (OK, OK), "member": (OK, GONE), "reader": (OK, GONE)}),
    ("update subnet", "PUT", "/subnets/{subnet}", {"subnet": {"name": "s"}},
     {"admin": (OK, OK), "member": (OK, GONE), "reader": (NO, GONE)}),
    ("show port", "GET", "/ports/{port}", None,
     {"admin": (OK, OK), "member": (OK, GONE), "reader": (OK, GONE)}),
    ("create port", "POST", "/ports", {"port": {"network_id": "{network}"}},
     {"admin": (MADE, MADE), "member": (MADE, GONE), "reader": (NO, NO)}),
    ("bind port", "PUT", "/ports/{port}", {"port": {"binding:host_id": "node-x"}},
     {"admin": (OK, OK), "member": (NO, NO), "reader": (NO, NO)}),
    ("show router", "GET", "/routers/{router}", None,
     {"admin": (OK, OK), "member": (OK, GONE), "reader": (OK, GONE)}),
    ("update router", "PUT", "/routers/{router}", {"router": {"name": "r"}},
     {"admin": (OK, OK), "member": (OK, GONE), "reader": (NO, GONE)}),
    ("show group", "GET", "/security-groups/{group}", None,
     {"admin": (OK, OK), "member": (OK, GONE), "reader": (OK, GONE)}),
    ("add rule", "POST", "/security-group-rules", {"security_group_rule": {
        "security_group_id": "{group}", "direction": "ingress", "protocol": "tcp",
        "port_range_min": "{n}", "port_range_max": "{n}"}},
     {"admin": (MADE, MADE), "member": (MADE, GONE), "reader": (NO, GONE)}),
    ("show quota", "GET", "/quotas/{project}", None,
     {"admin": (OK, OK), "member": (OK, NO), "reader": (OK, NO)}),
    ("update quota", "PUT", "/quotas/{project}", {"quota": {"router": 10}},
     {"admin": (OK, OK), "member": (NO, NO), "reader": (NO, NO)}),
    ("agents", "GET", "/agents", None,
     {"admin": (OK, OK), "member": (NO, NO), "reader": (NO, NO)}),
    ("extensions", "GET", "/extensions", None, dict.fromkeys(ROLES, (OK, OK))),
]
COUNTER = iter(range(1000, 60000))


def fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    if value == "{n}":
        return next(COUNTER)
    return value.format(**values) if isinstance(value, str) else value


@pytest.mark.parametrize("row", MATRIX, ids=[r[0] for r in MATRIX])
@pytest.mark.parametrize("role", ROLES)
def test_policy(cloud: Cloud, world: dict, role: str, row: tuple) -> None:
    name, method, path, body, expected = row
    for index, whose in enumerate(("own", "other")):
        values = world[whose]
        if body is not None and "provider:network_type" in str(body):
            body = {"network": {"project_id": "{project}", "provider:network_type": "vxlan"}}
        with cloud.http(world["tokens"][role]) as client:
            resp = client.request(method, V + fill(path, values), json=fill(body, values))
        assert resp.status_code == expected[role][index], (name, role, whose, resp.text)
        if resp.status_code >= 400:
            error = resp.json()["NeutronError"]
            assert error["message"] and error["type"] and error["detail"] == ""


def test_isolation(cloud: Cloud, world: dict) -> None:
    """B's member sees none of A's resources, but does see public (external)."""
    other = world["other"]
    with cloud.http(world["tokens"]["member"]) as client:
        nets = {n["id"]: n for n in client.get(f"{V}/networks").json()["networks"]}
        assert other["network"] not in nets
        assert any(n["name"] == "public" and n["router:external"] for n in nets.values())
        assert "private" not in {n["name"] for n in nets.values()}
        ports = client.get(f"{V}/ports").json()["ports"]
        assert other["port"] not in {p["id"] for p in ports}
        assert all("binding:host_id" not in p for p in ports)
        groups = client.get(f"{V}/security-groups").json()["security_groups"]
        assert {g["project_id"] for g in groups} == {world["own"]["project"]}
        defaults = client.get(f"{V}/security-groups", params={"name": "default"}).json()
        assert len(defaults["security_groups"]) == 1
        for kind in ("subnets", "routers", "floatingips", "security-group-rules"):
            items = client.get(f"{V}/{kind}").json()[kind.replace("-", "_")]
            assert world["other"]["project"] not in {i["project_id"] for i in items}, kind
        refused = client.post(f"{V}/networks", json={"network": {"router:external": True}})
        assert refused.status_code == 403
        assert "create_network:external" in refused.json()["NeutronError"]["message"]


def test_member_cannot_delete_default_group(cloud: Cloud, world: dict) -> None:
    with cloud.http(world["tokens"]["member"]) as client:
        default = client.get(f"{V}/security-groups", params={"name": "default"}).json()
        group_id = default["security_groups"][0]["id"]
        resp = client.delete(f"{V}/security-groups/{group_id}")
        assert resp.status_code == 409
        assert resp.json()["NeutronError"]["type"] == "SecurityGroupCannotRemoveDefault"


def test_pagination_and_fields(cloud: Cloud) -> None:
    with cloud.http(cloud.token()) as client:
        made = [client.post(f"{V}/networks", json={"network": {"name": unique("page")}})
                .json()["network"]["id"] for _ in range(3)]
        seen, url = [], f"{V}/networks?limit=2&sort_key=id&fields=id&fields=name"
        while url:
            body = client.get(url).json()
            assert all(set(n) == {"id", "name"} for n in body["networks"])
            seen += [n["id"] for n in body["networks"]]
            links = body.get("networks_links", [])
            url = links[0]["href"] if links else None
        assert seen == sorted(seen) and set(made) <= set(seen) and len(seen) == len(set(seen))
        for network_id in made:
            assert client.delete(f"{V}/networks/{network_id}").status_code == 204
