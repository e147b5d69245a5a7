"""Hypervisors, services and availability zones over compute nodes inserted in the DB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import delete

from atwill.controller.db.compute import Node
from atwill.controller.db.session import Database
from tests.cloud import Cloud, unique


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


@pytest.fixture(scope="module")
def nodes(cloud: Cloud) -> Iterator[list[Node]]:
    """Two nodes: one enabled and up in 'nova', one disabled and down in its own zone."""
    db = Database(cloud.db_url())
    zone = unique("az")
    made = [Node(name=unique("node-a"), availability_zone="nova", host_ip="10.0.0.1",
                 vcpus=16, memory_mb=32768, local_gb=100, vcpus_used=4,
                 memory_mb_used=4096, local_gb_used=10, running_vms=0),
            Node(name=unique("node-b"), availability_zone=zone, enabled=False,
                 disabled_reason="maintenance", state="down", vcpus=8, memory_mb=8192,
                 local_gb=50)]
    with db.session() as session:
        session.add_all(made)
    try:
        yield made
    finally:
        with db.session() as session:
            session.execute(delete(Node).where(Node.id.in_([n.id for n in made])))
        db.dispose()


def test_hypervisor_shapes_by_version(cloud: Cloud, nodes: list[Node]) -> None:
    a = nodes[0]
    with cloud.http(cloud.token()) as client:
        old = client.get("/compute/v2.1/os-hypervisors/detail").json()["hypervisors"]
        new = client.get("/compute/v2.1/os-hypervisors/detail", headers=mv("2.88")).json()
        show = client.get(f"/compute/v2.1/os-hypervisors/{a.id}", headers=mv("2.88")).json()
        by_pattern = client.get("/compute/v2.1/os-hypervisors", headers=mv("2.53"),
                                params={"hypervisor_hostname_pattern": a.name}).json()
        missing = client.get("/compute/v2.1/os-hypervisors", headers=mv("2.53"),
                             params={"hypervisor_hostname_pattern": "no-such-node"})
        paged = client.get("/compute/v2.1/os-hypervisors", headers=mv("2.53"),
                           params={"limit": 1}).json()
    mine = {h["hypervisor_hostname"]: h for h in old}
    assert isinstance(mine[a.name]["id"], int) and mine[a.name]["vcpus"] == 16
    assert mine[a.name]["free_ram_mb"] == 28672 and isinstance(mine[a.name]["cpu_info"], str)
    latest = {h["hypervisor_hostname"]: h for h in new["hypervisors"]}
    assert latest[a.name]["id"] == a.id and "vcpus" not in latest[a.name]
    assert latest[nodes[1].name]["status"] == "disabled"
    assert latest[nodes[1].name]["service"]["disabled_reason"] == "maintenance"
    assert show["hypervisor"]["uptime"] is None and show["hypervisor"]["state"] == "up"
    assert [h["id"] for h in by_pattern["hypervisors"]] == [a.id]
    assert missing.status_code == 404 and "itemNotFound" in missing.json()
    assert len(paged["hypervisors"]) == 1 and paged["hypervisors_links"][0]["rel"] == "next"


def test_hypervisor_statistics(cloud: Cloud, nodes: list[Node]) -> None:
    with cloud.http(cloud.token()) as client:
        stats = client.get("/compute/v2.1/os-hypervisors/statistics").json()
        gone = client.get("/compute/v2.1/os-hypervisors/statistics", headers=mv("2.88"))
    totals = stats["hypervisor_statistics"]
    assert totals["count"] >= 2 and totals["vcpus"] >= 24 and totals["vcpus_used"] >= 4
    assert gone.status_code == 404


def test_services(cloud: Cloud, nodes: list[Node]) -> None:
    a, b = nodes
    with cloud.http(cloud.token()) as client:
        old = client.get("/compute/v2.1/os-services", params={"host": a.name}).json()
        new = client.get("/compute/v2.1/os-services", headers=mv("2.53"),
                         params={"binary": "nova-compute"}).json()
        none = client.get("/compute/v2.1/os-services", params={"binary": "nova-api"}).json()
        disabled = client.put(f"/compute/v2.1/os-services/{a.service_id}", headers=mv("2.53"),
                              json={"status": "disabled", "disabled_reason": "test"})
        legacy = client.put("/compute/v2.1/os-services/enable",
                            json={"host": a.name, "binary": "nova-compute"})
        forced = client.put(f"/compute/v2.1/os-services/{a.service_id}", headers=mv("2.53"),
                            json={"forced_down": True})
        client.put(f"/compute/v2.1/os-services/{a.service_id}", headers=mv("2.53"),
                   json={"forced_down": False})
    [service] = old["services"]
    assert isinstance(service["id"], int) and "forced_down" not in service
    assert (service["binary"], service["zone"], service["state"]) == ("nova-compute", "nova", "up")
    latest = {s["host"]: s for s in new["services"]}
    assert latest[b.name]["id"] == b.service_id and latest[b.name]["state"] == "down"
    assert none["services"] == []
    assert disabled.json()["service"]["status"] == "disabled"
    assert disabled.json()["service"]["disabled_reason"] == "test"
    assert legacy.json()["service"] == {"host": a.name, "binary": "nova-compute",
                                        "status": "enabled"}
    assert forced.json()["service"]["state"] == "down"


def test_availability_zones(cloud: Cloud, nodes: list[Node]) -> None:
    a, b = nodes
    with cloud.http(cloud.token()) as client:
        plain = client.get("/compute/v2.1/os-availability-zone").json()
        detail = client.get("/compute/v2.1/os-availability-zone/detail").json()
    zones = {z["zoneName"]: z for z in plain["availabilityZoneInfo"]}
    assert zones["nova"]["zoneState"]["available"] is True and zones["nova"]["hosts"] is None
    assert zones[b.availability_zone]["zoneState"]["available"] is False
    hosts = {z["zoneName"]: z["hosts"] for z in detail["availabilityZoneInfo"]}
    assert hosts["nova"][a.name]["nova-compute"]["active"] is True


def test_cli(cloud: Cloud, nodes: list[Node]) -> None:
    a = nodes[0]
    names = {h["Hypervisor Hostname"] for h in cloud.openstack("hypervisor", "list", "-f",
                                                               "json")}
    assert {n.name for n in nodes} <= names
    shown = cloud.openstack("hypervisor", "show", a.name, "-f", "json")
    assert shown["id"] == a.id and shown["host_ip"] == "10.0.0.1"
    # Before 2.88 the CLI asks os-hypervisors/{id}/uptime: a node that never said its
    # uptime answers Nova's 501, which the CLI skips (a null made it fail).
    older = cloud.openstack("--os-compute-api-version", "2.87", "hypervisor", "show",
                            a.name, "-f", "json")
    assert older["host_ip"] == "10.0.0.1" and "uptime" not in older
    with cloud.http(cloud.token()) as client:
        uptime = client.get(f"/compute/v2.1/os-hypervisors/{older['id']}/uptime",
                            headers=mv("2.87"))
    assert uptime.status_code == 501, uptime.text
    assert uptime.json()["notImplemented"]["message"] == (
        "Virt driver does not implement uptime function.")
    stats = cloud.openstack("hypervisor", "stats", "show", "-f", "json")
    assert stats["count"] >= 2
    services = {s["Host"]: s for s in cloud.openstack("compute", "service", "list", "-f",
                                                      "json")}
    assert services[a.name]["Binary"] == "nova-compute"
    assert services[nodes[1].name]["Status"] == "disabled"
    zones = cloud.openstack("availability", "zone", "list", "-f", "json")
    assert {"Zone Name": "nova", "Zone Status": "available"} in zones
    long = cloud.openstack("availability", "zone", "list", "--long", "-f", "json")
    assert any(z["Host Name"] == a.name for z in long)


def test_delete_service_removes_the_node(cloud: Cloud) -> None:
    db = Database(cloud.db_url())
    node = Node(name=unique("node-gone"))
    with db.session() as session:
        session.add(node)
    db.dispose()
    with cloud.http(cloud.token()) as client:
        bad = client.delete("/compute/v2.1/os-services/not-a-uuid", headers=mv("2.53"))
        unknown = client.delete(f"/compute/v2.1/os-services/{uuid.uuid4()}", headers=mv("2.53"))
        gone = client.delete(f"/compute/v2.1/os-services/{node.service_id}", headers=mv("2.53"))
        after = client.get(f"/compute/v2.1/os-hypervisors/{node.id}", headers=mv("2.53"))
    assert (bad.status_code, unknown.status_code, gone.status_code) == (400, 404, 204)
    assert after.status_code == 404
