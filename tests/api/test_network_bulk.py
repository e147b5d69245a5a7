"""Neutron's bulk create of networks, subnets and ports: in order, all or nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.test_compute_nonadmin import make_project, make_user
from tests.cloud import Cloud, unique

V = "/network/v2.0"


@pytest.fixture()
def net(cloud: Cloud) -> Iterator[str]:
    with cloud.http(cloud.token()) as client:
        network = client.post(f"{V}/networks", json={"network": {"name": unique("bulk")}}
                              ).json()["network"]["id"]
        yield network
        for port in client.get(f"{V}/ports", params={"network_id": network}).json()["ports"]:
            client.delete(f"{V}/ports/{port['id']}")
        assert client.delete(f"{V}/networks/{network}").status_code == 204


def names(cloud: Cloud, collection: str, wanted: set[str]) -> set[str]:
    with cloud.http(cloud.token()) as client:
        items = client.get(f"{V}/{collection}").json()[collection]
    return {i["name"] for i in items} & wanted


# openstacksdk warns about its own optional dependencies on import; that is not ours to fix.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_bulk_networks_through_the_sdk_session(cloud: Cloud) -> None:
    conn = cloud.sdk()
    wanted = [unique("bulk-a"), unique("bulk-b"), unique("bulk-c")]
    resp = conn.network.post("/networks", json={"networks": [
        {"name": wanted[0]}, {"name": wanted[1], "description": "two"},
        {"name": wanted[2], "admin_state_up": False}]})
    assert resp.status_code == 201, resp.text
    made = resp.json()["networks"]
    assert set(resp.json()) == {"networks"}
    assert [n["name"] for n in made] == wanted
    assert made[1]["description"] == "two" and made[2]["admin_state_up"] is False
    assert len({n["provider:segmentation_id"] for n in made}) == 3
    for network in made:
        assert conn.network.get_network(network["id"]).name == network["name"]
        conn.network.delete_network(network["id"])


def test_a_bad_item_creates_nothing(cloud: Cloud, net: str) -> None:
    bad_networks = [{"name": unique("ok")}, {"name": unique("bad"), "mtu": 10}]
    with cloud.http(cloud.token()) as client:
        client.post(f"{V}/subnets", json={"subnet": {"network_id": net, "ip_version": 4,
                                                      "cidr": "10.61.0.0/24"}})
        # Caught before the transaction (validation) and inside it (the database).
        resp = client.post(f"{V}/networks", json={"networks": bad_networks})
        assert resp.status_code == 400 and "mtu" in resp.json()["NeutronError"]["message"]
        ports = [{"network_id": net, "name": unique("p")},
                 {"network_id": net, "name": unique("p"),
                  "fixed_ips": [{"ip_address": "10.61.0.9"}]},
                 {"network_id": net, "name": unique("p"),
                  "fixed_ips": [{"ip_address": "10.61.0.9"}]}]
        resp = client.post(f"{V}/ports", json={"ports": ports})
        assert resp.status_code == 409, resp.text
        assert resp.json()["NeutronError"]["type"] == "IpAddressAlreadyAllocated"
        resp = client.post(f"{V}/ports", json={"ports": ports[:1] + [
            {"network_id": "no-such-network", "name": unique("p")}]})
        assert resp.status_code == 404
        subnets = [{"network_id": net, "ip_version": 4, "cidr": "10.62.0.0/24",
                    "name": unique("s")},
                   {"network_id": net, "ip_version": 4, "cidr": "10.62.0.0/25",
                    "name": unique("s")}]
        resp = client.post(f"{V}/subnets", json={"subnets": subnets})
        assert resp.status_code == 400 and "overlaps" in resp.text
        assert client.get(f"{V}/ports", params={"network_id": net}).json()["ports"] == []
        cidrs = [s["cidr"] for s in client.get(f"{V}/subnets", params={"network_id": net}
                                               ).json()["subnets"]]
        assert cidrs == ["10.61.0.0/24"]
    assert names(cloud, "networks", {n["name"] for n in bad_networks}) == set()


def test_bulk_ports_and_subnets_in_order(cloud: Cloud, net: str) -> None:
    with cloud.http(cloud.token()) as client:
        resp = client.post(f"{V}/subnets", json={"subnets": [
            {"network_id": net, "ip_version": 4, "cidr": "10.63.0.0/24", "name": "first"},
            {"network_id": net, "ip_version": 6, "cidr": "fd63::/64", "name": "second"}]})
        assert resp.status_code == 201, resp.text
        assert [s["cidr"] for s in resp.json()["subnets"]] == ["10.63.0.0/24", "fd63::/64"]
        resp = client.post(f"{V}/ports", json={"ports": [
            {"network_id": net, "name": "a"}, {"network_id": net, "name": "b"}]})
        assert resp.status_code == 201, resp.text
        made = resp.json()["ports"]
        assert [p["name"] for p in made] == ["a", "b"]
        assert [p["fixed_ips"][0]["ip_address"] for p in made] == ["10.63.0.2", "10.63.0.3"]
        for bad in ({"ports": []}, {"ports": {"network_id": net}}, {"ports": [1]},
                    {"port": {"network_id": net}, "ports": [{"network_id": net}]}):
            resp = client.post(f"{V}/ports", json=bad)
            assert resp.status_code == 400, (bad, resp.text)
        assert len(client.get(f"{V}/ports", params={"network_id": net}).json()["ports"]) == 2


def test_quota_counts_the_whole_batch(cloud: Cloud) -> None:
    project = make_project(cloud)
    member = make_user(cloud, "member", project)
    with cloud.http(cloud.token()) as admin:
        assert admin.put(f"{V}/quotas/{project[1]}", json={"quota": {"network": 2}}
                         ).status_code == 200
    wanted = [unique("q") for _ in range(3)]
    with cloud.http(cloud.token(member)) as client:
        resp = client.post(f"{V}/networks", json={"networks": [{"name": n} for n in wanted]})
        assert resp.status_code == 409 and resp.json()["NeutronError"]["type"] == "OverQuota"
        assert client.get(f"{V}/networks", params={"project_id": project[1]}
                          ).json()["networks"] == []
        resp = client.post(f"{V}/networks", json={"networks": [{"name": n}
                                                                for n in wanted[:2]]})
        assert resp.status_code == 201
        for network in resp.json()["networks"]:
            assert client.delete(f"{V}/networks/{network['id']}").status_code == 204
    with cloud.http(cloud.token()) as admin:
        assert admin.delete(f"{V}/quotas/{project[1]}").status_code == 204
