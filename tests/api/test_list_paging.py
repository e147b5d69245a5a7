"""Lists page in SQL: limit/marker keysets, sort keys, and the errors of bad markers/keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cloud import Cloud, unique

NET = "/network/v2.0"
NOVA = "/compute/v2.1"
PORTS = 250


@pytest.fixture(scope="module")
def admin(cloud: Cloud) -> Iterator[httpx.Client]:
    with cloud.http(cloud.token()) as client:
        yield client


@pytest.fixture(scope="module")
def ports(admin: httpx.Client) -> Iterator[dict[str, Any]]:
    """250 ports on a network of their own (one bulk request), removed afterwards."""
    net = admin.post(f"{NET}/networks", json={"network": {"name": unique("pg")}}).json()
    net_id = net["network"]["id"]
    bodies = [{"network_id": net_id, "name": f"p{i % 7}"} for i in range(PORTS)]
    made = admin.post(f"{NET}/ports", json={"ports": bodies})
    assert made.status_code == 201, made.text
    ids = [p["id"] for p in made.json()["ports"]]
    yield {"net": net_id, "ids": ids}
    for ident in ids:
        assert admin.delete(f"{NET}/ports/{ident}").status_code == 204
    assert admin.delete(f"{NET}/networks/{net_id}").status_code == 204


@pytest.fixture(scope="module")
def member(cloud: Cloud) -> Iterator[str]:
    """A member user in a project of its own; its token."""
    project, user = unique("pgp"), unique("pgu")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    yield cloud.token(user)
    cloud.openstack("user", "delete", user)
    cloud.openstack("project", "delete", project)


def _walk(client: httpx.Client, url: str, key: str) -> tuple[list[dict], int]:
    seen, pages = [], 0
    while url:
        resp = client.get(url)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        seen += body[key]
        pages += 1
        links = body.get(f"{key}_links", [])
        url = links[0]["href"] if links else ""
    return seen, pages


def test_paging_through_250_ports_returns_each_once(admin: httpx.Client, ports: dict) -> None:
    url = f"{NET}/ports?network_id={ports['net']}&limit=40"
    seen, pages = _walk(admin, url, "ports")
    ids = [p["id"] for p in seen]
    assert len(ids) == PORTS and sorted(ids) == sorted(ports["ids"])
    # Neutron's default order here: creation time, then id (one bulk request shares a time).
    assert [(p["created_at"], p["id"]) for p in seen] == sorted(
        (p["created_at"], p["id"]) for p in seen)
    assert pages == 7


def test_sorted_pages_follow_the_sort_key(admin: httpx.Client, ports: dict) -> None:
    url = (f"{NET}/ports?network_id={ports['net']}&limit=33&sort_key=name&sort_dir=desc"
           "&sort_key=mac_address&sort_dir=asc&fields=id&fields=name&fields=mac_address")
    seen, _ = _walk(admin, url, "ports")
    assert sorted(p["id"] for p in seen) == sorted(ports["ids"])
    order = [(p["name"], p["mac_address"]) for p in seen]
    assert order == sorted(order, key=lambda o: (-int(o[0][1:]), o[1]))
    assert set(seen[0]) == {"id", "name", "mac_address"}


def test_filters_narrow_in_sql_and_keep_paging(admin: httpx.Client, ports: dict) -> None:
    url = f"{NET}/ports?network_id={ports['net']}&name=p3&limit=10"
    seen, _ = _walk(admin, url, "ports")
    assert len(seen) == len([i for i in range(PORTS) if i % 7 == 3])
    assert {p["name"] for p in seen} == {"p3"}
    body = admin.get(f"{NET}/ports?network_id={ports['net']}&status=DOWN&limit=5").json()
    assert len(body["ports"]) == 5 and "ports_links" in body


@pytest.mark.parametrize(("query", "message"), [
    ("marker=8f14e45f-ceea-4e7a-9c1b-5d0d6a1f3b11", "marker [8f14e45f"),
    ("sort_key=fixed_ips", "fixed_ips is an invalid attribute for sort_key"),
    ("sort_key=bogus", "bogus is an invalid attribute for sort_key"),
    ("sort_key=name&sort_dir=sideways", "invalid value for sort_dir"),
    ("admin_state_up=maybe", "is not a boolean"),
])
def test_bad_list_queries_are_400(admin: httpx.Client, ports: dict, query: str,
                                  message: str) -> None:
    resp = admin.get(f"{NET}/ports?network_id={ports['net']}&{query}")
    assert resp.status_code == 400, resp.text
    assert message in resp.json()["NeutronError"]["message"]


def test_another_projects_marker_is_not_found(member: str, ports: dict,
                                              cloud: Cloud) -> None:
    with cloud.http(member) as client:
        resp = client.get(f"{NET}/ports?marker={ports['ids'][0]}")
    assert resp.status_code == 400
    assert f"marker [{ports['ids'][0]}] not found" in resp.json()["NeutronError"]["message"]


@pytest.fixture(scope="module")
def servers(admin: httpx.Client) -> Iterator[list[str]]:
    """Six servers (no node takes them, so they end in ERROR), removed afterwards."""
    flavor = admin.post(f"{NOVA}/flavors", json={"flavor": {
        "name": unique("pgf"), "ram": 64, "vcpus": 1, "disk": 0}}).json()["flavor"]
    image = admin.post("/image/v2/images", json={
        "name": unique("pgi"), "disk_format": "raw", "container_format": "bare"}).json()
    admin.put(f"/image/v2/images/{image['id']}/file", content=b"\0" * 512,
              headers={"Content-Type": "application/octet-stream"})
    names = [unique("pgs") for _ in range(6)]
    for name in names:
        resp = admin.post(f"{NOVA}/servers", json={"server": {
            "name": name, "flavorRef": flavor["id"], "imageRef": image["id"],
            "networks": "none"}}, headers={"OpenStack-API-Version": "compute 2.37"})
        assert resp.status_code == 202, resp.text
    listed = admin.get(f"{NOVA}/servers").json()["servers"]
    ids = [s["id"] for s in listed if s["name"] in names]
    yield ids
    for ident in ids:
        assert admin.delete(f"{NOVA}/servers/{ident}").status_code == 204
    admin.delete(f"/image/v2/images/{image['id']}")
    admin.delete(f"{NOVA}/flavors/{flavor['id']}")


def test_server_pages_in_sql_each_once(admin: httpx.Client, servers: list[str]) -> None:
    names = "|".join(s for s in _names(admin, servers))
    seen, pages = _walk(admin, f"{NOVA}/servers?name=^({names})$&limit=4", "servers")
    assert [s["id"] for s in seen] == servers
    assert pages == 2


def test_server_sort_key_orders_the_list(admin: httpx.Client, servers: list[str]) -> None:
    names = "|".join(_names(admin, servers))
    url = f"{NOVA}/servers/detail?name=^({names})$&sort_key=display_name&sort_dir=asc&limit=5"
    seen, _ = _walk(admin, url, "servers")
    assert [s["name"] for s in seen] == sorted(_names(admin, servers))


@pytest.mark.parametrize(("query", "status", "message"), [
    ("marker=8f14e45f-ceea-4e7a-9c1b-5d0d6a1f3b11", 400, "marker [8f14e45f"),
    ("sort_key=bogus", 400, "sort_key"),
    ("sort_key=display_name&sort_dir=up", 400, "sort_dir"),
    ("sort_key=display_name&sort_dir=asc&sort_dir=desc", 400, "Sort direction"),
])
def test_bad_server_list_queries(admin: httpx.Client, servers: list[str], query: str,
                                 status: int, message: str) -> None:
    resp = admin.get(f"{NOVA}/servers?{query}")
    assert resp.status_code == status, resp.text
    assert message in resp.json()["badRequest"]["message"]


def test_member_may_not_sort_by_host_nor_use_anothers_marker(
        cloud: Cloud, member: str, servers: list[str]) -> None:
    with cloud.http(member) as client:
        resp = client.get(f"{NOVA}/servers?sort_key=host")
        assert resp.status_code == 403, resp.text
        resp = client.get(f"{NOVA}/servers?marker={servers[0]}")
        assert resp.status_code == 400
        assert f"marker [{servers[0]}] not found" in resp.json()["badRequest"]["message"]


def _names(admin: httpx.Client, ids: list[str]) -> list[str]:
    return [admin.get(f"{NOVA}/servers/{i}").json()["server"]["name"] for i in ids]
