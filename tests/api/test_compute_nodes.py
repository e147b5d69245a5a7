"""Hypervisors, services and availability zones over compute nodes inserted in the DB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import delete

from atwill.controller.db.cluster import RevokedCertificate
from atwill.controller.db.compute import Node
from atwill.controller.db.servers import Instance
from atwill.controller.db.session import Database
from atwill.controller.revision import revision
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
        controller = urlsplit(cloud.url).hostname
        internal = client.get("/compute/v2.1/os-services", headers=mv("2.53"),
                              params={"host": controller}).json()["services"]
        legacy_ids = client.get("/compute/v2.1/os-services", params={
            "host": controller, "binary": "nova-scheduler"}).json()["services"]
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
    # Nova also lists its other services: a live controller is conductor and scheduler.
    assert {s["binary"]: s["zone"] for s in internal} == {"nova-conductor": "internal",
                                                          "nova-scheduler": "internal"}
    assert all(s["state"] == "up" and s["status"] == "enabled" for s in internal)
    assert str(uuid.UUID(internal[0]["id"])) == internal[0]["id"]
    assert isinstance(legacy_ids[0]["id"], int) and "forced_down" not in legacy_ids[0]
    assert b.name not in {s["host"] for s in internal}
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
    # Nova's detail also shows its other services' zone: a controller's conductor/scheduler.
    assert "internal" not in zones
    controller = hosts["internal"][urlsplit(cloud.url).hostname]
    assert set(controller) == {"nova-conductor", "nova-scheduler"}
    assert controller["nova-scheduler"]["available"] is True
    assert controller["nova-scheduler"]["updated_at"].endswith("Z")


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


def test_hosts(cloud: Cloud, nodes: list[Node]) -> None:
    """os-hosts (until 2.42, what `openstack host list/show/set` use) over the nodes."""
    a, b = nodes
    hosts = "/compute/v2.1/os-hosts"
    db = Database(cloud.db_url())
    rows = [Instance(name=unique("h"), project_id=p, user_id="u", vcpus=2, memory_mb=512,
                     disk_gb=5, flavor={"ephemeral": 1}, vm_state="active", node_id=a.id)
            for p in ("proj-b", "proj-a", "proj-a")]
    with db.session() as session:
        session.add_all(rows)
    try:
        with cloud.http(cloud.token()) as client:
            listed = client.get(hosts).json()["hosts"]
            zoned = client.get(hosts, params={"zone": b.availability_zone}).json()["hosts"]
            blank = client.get(hosts, params={"zone": ""}).json()["hosts"]
            internal = client.get(hosts, params={"zone": "internal"}).json()["hosts"]
            client_404 = client.get(f"{hosts}/{urlsplit(cloud.url).hostname}").status_code
            shown = client.get(f"{hosts}/{a.name}").json()["host"]
            off = client.put(f"{hosts}/{a.name}", json={"status": "Disable"})
            node_off = client.get("/compute/v2.1/os-services", params={"host": a.name})
            on = client.put(f"{hosts}/{a.name}", json={"status": "enable"})
            refused = [client.put(f"{hosts}/{a.name}", json=body).status_code for body in (
                {}, {"status": "eNable"}, {"status": "on"}, {"status": "enable", "x": 1})]
            maintenance = client.put(f"{hosts}/{a.name}", json={"maintenance_mode": "enable"})
            power = client.get(f"{hosts}/{a.name}/reboot")
            missing = [client.get(f"{hosts}/no-such-host").status_code,
                       client.get(f"{hosts}/no-such-host/startup").status_code,
                       client.put(f"{hosts}/no-such-host", json={"status": "enable"}).status_code,
                       client.get(hosts, headers=mv("2.43")).status_code]
    finally:
        with db.session() as session:
            session.execute(delete(Instance).where(Instance.id.in_([r.id for r in rows])))
        db.dispose()
    assert {"host_name": a.name, "service": "compute", "zone": "nova"} in listed
    controller = urlsplit(cloud.url).hostname
    assert {"host_name": controller, "service": "scheduler", "zone": "internal"} in listed
    assert blank == listed and {"host_name": controller, "service": "conductor",
                                "zone": "internal"} in internal
    assert client_404 == 404  # a controller is no compute host to show
    assert zoned == [{"host_name": b.name, "service": "compute",
                      "zone": b.availability_zone}]
    by_project = {r["resource"]["project"]: r["resource"] for r in shown}
    assert [r["resource"]["project"] for r in shown] == [
        "(total)", "(used_now)", "(used_max)", "proj-a", "proj-b"]
    assert by_project["(total)"] == {"host": a.name, "project": "(total)", "cpu": 16,
                                     "memory_mb": 32768, "disk_gb": 100}
    assert (by_project["(used_now)"]["cpu"], by_project["(used_now)"]["disk_gb"]) == (4, 10)
    assert by_project["(used_max)"]["cpu"] == 6 and by_project["(used_max)"]["disk_gb"] == 18
    assert by_project["proj-a"]["memory_mb"] == 1024
    assert off.json() == {"host": a.name, "status": "disabled"}
    assert node_off.json()["services"][0]["status"] == "disabled"
    assert on.json() == {"host": a.name, "status": "enabled"}
    assert refused == [400, 400, 400, 400]
    assert maintenance.status_code == 501 and power.status_code == 501
    assert missing == [404, 404, 404, 404]
    assert {"Host Name": a.name, "Service": "compute", "Zone": "nova"} in cloud.openstack(
        "host", "list", "-f", "json")


def test_delete_service_removes_the_node(cloud: Cloud) -> None:
    db = Database(cloud.db_url())
    node = Node(name=unique("node-gone"), cert_serial=uuid.uuid4().hex)
    with db.session() as session:
        session.add(node)
        before = revision(session)
    with cloud.http(cloud.token()) as client:
        bad = client.delete("/compute/v2.1/os-services/not-a-uuid", headers=mv("2.53"))
        unknown = client.delete(f"/compute/v2.1/os-services/{uuid.uuid4()}", headers=mv("2.53"))
        gone = client.delete(f"/compute/v2.1/os-services/{node.service_id}", headers=mv("2.53"))
        after = client.get(f"/compute/v2.1/os-hypervisors/{node.id}", headers=mv("2.53"))
    assert (bad.status_code, unknown.status_code, gone.status_code) == (400, 404, 204)
    assert after.status_code == 404
    # As `atwill node remove`: its certificate is revoked and every node is told (it leaves
    # their overlay peers); deleting the row alone left both to chance.
    with db.session() as session:
        revoked = session.get(RevokedCertificate, node.cert_serial)
        assert revoked is not None and revoked.node_name == node.name
        assert revision(session) > before
    db.dispose()
