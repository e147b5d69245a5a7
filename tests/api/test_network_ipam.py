"""IPAM under concurrency, and the desired state a node's agent reads."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import delete

from atwill.controller.db.compute import Node
from atwill.controller.db.session import Database
from atwill.controller.network.desired import network_desired
from atwill.controller.network.status import set_port_status
from tests.cloud import Cloud, unique

V = "/network/v2.0"


def test_concurrent_ports_never_share_an_address(cloud: Cloud) -> None:
    with cloud.http(cloud.token()) as client:
        net = client.post(f"{V}/networks", json={"network": {"name": unique("race")}}
                          ).json()["network"]["id"]
        client.post(f"{V}/subnets", json={"subnet": {"network_id": net, "ip_version": 4,
                                                      "cidr": "10.77.0.0/28"}})
    token = cloud.token()
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def create() -> None:
        with cloud.http(token) as client:
            resp = client.post(f"{V}/ports", json={"port": {"network_id": net}})
        with lock:
            results.append((resp.status_code, resp.json()))

    threads = [threading.Thread(target=create) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    made = [body["port"]["fixed_ips"][0]["ip_address"] for code, body in results
            if code == 201]
    refused = [body for code, body in results if code != 201]
    assert len(made) == 13 and len(set(made)) == 13  # a /28 less network, gateway, broadcast
    assert {ipaddress.ip_address(a) for a in made} == {
        ipaddress.ip_address("10.77.0.0") + i for i in range(2, 15)}
    assert len(refused) == 7 and all(
        b["NeutronError"]["type"] == "IpAddressGenerationFailure" for b in refused), refused


@pytest.fixture()
def nodes(cloud: Cloud) -> Iterator[list[str]]:
    db = Database(cloud.db_url())
    names = [unique("netnode"), unique("netnode")]
    with db.session() as session:
        session.add_all([Node(name=names[0], overlay_ip="100.72.0.10"),
                         Node(name=names[1], overlay_ip="100.72.0.11", state="down")])
    try:
        yield names
    finally:
        with db.session() as session:
            session.execute(delete(Node).where(Node.name.in_(names)))
        db.dispose()


def test_desired_state_and_agents(cloud: Cloud, nodes: list[str]) -> None:
    with cloud.http(cloud.token()) as client:
        agents = {a["host"]: a for a in client.get(f"{V}/agents").json()["agents"]}
        assert agents[nodes[0]]["alive"] and not agents[nodes[1]]["alive"]
        private = client.get(f"{V}/networks", params={"name": "private"}).json()["networks"][0]
        ports = [client.post(f"{V}/ports", json={"port": {
            "network_id": private["id"], "binding:host_id": node}}).json()["port"]
            for node in nodes]
        assert ports[0]["binding:vif_type"] == "tap"
        fip = client.post(f"{V}/floatingips", json={"floatingip": {
            "floating_network_id": client.get(f"{V}/networks", params={"name": "public"})
            .json()["networks"][0]["id"], "port_id": ports[0]["id"]}}).json()["floatingip"]
    db = Database(cloud.db_url())
    try:
        with db.session() as session:
            node = session.query(Node).filter_by(name=nodes[0]).one()
            state = network_desired(session, node)
            assert set_port_status(session, ports[0]["id"], "ACTIVE")
    finally:
        db.dispose()
    assert [p["id"] for p in state["ports"]] == [ports[0]["id"]]
    net = next(n for n in state["networks"] if n["id"] == private["id"])
    assert net["vni"] == private["provider:segmentation_id"] and net["mtu"] == 1370
    assert net["remote_ports"][0]["id"] == ports[1]["id"]
    assert net["vteps"] == ["100.72.0.11"]
    router = state["routers"][0]
    assert router["name"] == "router1" and router["gateway"]["enable_snat"]
    assert router["interfaces"][0]["ip_address"] == "10.0.0.1"
    assert state["floating_ips"][0]["floating_ip_address"] == fip["floating_ip_address"]
    group = state["security_groups"][0]
    members = group["remote_group_members"][group["id"]]["IPv4"]
    assert {p["fixed_ips"][0]["ip_address"] for p in ports} <= set(members)
    with cloud.http(cloud.token()) as client:
        assert client.get(f"{V}/ports/{ports[0]['id']}").json()["port"]["status"] == "ACTIVE"
        client.delete(f"{V}/floatingips/{fip['id']}")
        for port in ports:
            assert client.delete(f"{V}/ports/{port['id']}").status_code == 204
