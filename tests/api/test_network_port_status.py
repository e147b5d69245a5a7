"""Ports of instances are ACTIVE while their node reports the instance running."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete

from atwill.controller.db.servers import Instance
from atwill.controller.db.session import Database
from tests.api.test_cluster import Node, node_list, nodes, token, wait_for  # noqa: F401
from tests.cloud import Cloud, unique

V = "/network/v2.0"


def test_port_follows_the_nodes_report_of_its_instance(cloud: Cloud, tmp_path: Path,
                                                      nodes: list[Node]) -> None:  # noqa: F811
    node = Node(cloud, tmp_path, unique("portnode"))
    nodes.append(node)
    node.join(token(cloud))
    wait_for(lambda: any(n["name"] == node.name and n["state"] == "up"
                         for n in node_list(cloud)), 20, "node up")
    node_id = node.node_id()
    # The agent would report the instance missing (this host runs no VM for it): the
    # test speaks for the node through the same report API instead.
    node.stop()
    db = Database(cloud.db_url())
    server = Instance(name=unique("vm"), project_id="p", user_id="u", vcpus=1, memory_mb=64,
                      disk_gb=1, node_id=node_id, node_name=node.name)
    with db.session() as session:
        session.add(server)
        session.flush()
        server_id = server.id
    try:
        with cloud.http(cloud.token()) as client:
            private = client.get(f"{V}/networks", params={"name": "private"}
                                 ).json()["networks"][0]["id"]
            port = client.post(f"{V}/ports", json={"port": {
                "network_id": private, "device_id": server_id, "device_owner": "compute:nova",
                "binding:host_id": node.name}}).json()["port"]
            assert port["status"] == "DOWN"
            other = client.post(f"{V}/ports", json={"port": {
                "network_id": private, "device_id": server_id,
                "device_owner": "compute:nova", "binding:host_id": "elsewhere"}}).json()["port"]

            def report(state: str) -> None:
                with node.http() as agent:
                    assert agent.post(f"/cluster/v1/nodes/{node_id}/heartbeat", json={
                        "overlay": {}, "instances": {server_id: {"state": state}}}
                        ).status_code == 200

            def statuses() -> dict[str, str]:
                found = client.get(f"{V}/ports", params={"device_id": server_id}).json()
                return {p["id"]: p["status"] for p in found["ports"]}

            report("running")
            assert statuses() == {port["id"]: "ACTIVE", other["id"]: "DOWN"}
            assert client.get(f"{V}/ports/{port['id']}").json()["port"]["status"] == "ACTIVE"
            assert [p["id"] for p in client.get(f"{V}/ports", params={
                "status": "ACTIVE", "device_id": server_id}).json()["ports"]] == [port["id"]]
            report("shutoff")
            assert statuses() == {port["id"]: "DOWN", other["id"]: "DOWN"}
            for made in (port, other):
                assert client.delete(f"{V}/ports/{made['id']}").status_code == 204
    finally:
        with db.session() as session:
            session.execute(delete(Instance).where(Instance.id == server_id))
        db.dispose()
