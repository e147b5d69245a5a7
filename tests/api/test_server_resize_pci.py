"""Cold migration, resize, drain and evacuation of servers with PCI passthrough devices
(flavor pci_passthrough:alias, the cloud's pci_aliases), between two agent-less nodes
whose inventories list one fake GPU each (at different addresses) and whose small fake
agents (test_server_resize.ResizingAgent) carry the disks. No PCI hardware exists here:
the test checks the claims (pci_claims) and the device addresses each node's desired
state gives its agent for vfio-pci; tests/unit/test_qemu_argv.py turns those into QEMU's
arguments.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.api.aggregate_nodes import INVENTORY, JoinedNode, wait_for
from tests.api.lockout_cloud import own_cloud
from tests.api.test_node_drain import NODES, call
from tests.api.test_server_resize import Pair, V, mv
from tests.cloud import Cloud, CommandFailed, unique

GPU_A, GPU_B = "0000:3b:00.0", "0000:5e:00.0"


def gpu(address: str) -> dict[str, Any]:
    return {"address": address, "vendor_id": "10de", "product_id": "1028",
            "class": "0x030200", "numa_node": 0, "driver": "vfio-pci"}


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    yield from own_cloud(engine, ha_auto_evacuate=False, resize_confirm_window=0,
                         pci_aliases="K20m=10de:1028")


@pytest.fixture(scope="module")
def pair(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("rzpci")
    a = JoinedNode(cloud, tmp, "pcinode-a", {**INVENTORY, "pci_devices": [gpu(GPU_A)]})
    b = JoinedNode(cloud, tmp, "pcinode-b", {**INVENTORY, "pci_devices": [gpu(GPU_B)]})
    data = tmp / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", unique("rzimg"), "-f", "json")["id"]
    flavors = {"small": ("1", "64", "1"), "big": ("2", "128", "2")}
    for name, (vcpus, ram, disk) in flavors.items():
        cloud.openstack("flavor", "create", "--vcpus", vcpus, "--ram", ram, "--disk", disk,
                        "--property", "pci_passthrough:alias=K20m:1", f"{image}-{name}")
    made = Pair(cloud, a, b, image)
    try:
        yield made
    finally:
        for server in cloud.openstack("server", "list", "--all-projects", "-f", "json"):
            if server["Name"].startswith("rzsrv"):
                cloud.openstack("server", "delete", "--wait", server["ID"])
        for agent in made.agents.values():
            agent.stop()
        a.remove()
        b.remove()
        cloud.openstack("image", "delete", image)
        for name in flavors:
            cloud.openstack("flavor", "delete", f"{image}-{name}")


def claims(cloud: Cloud, server: str) -> set[tuple[str, str]]:
    """The server's PCI claims as (node name, address)."""
    engine = create_engine(cloud.db_url())
    try:
        with engine.connect() as conn:
            return {(n, a) for n, a in conn.execute(text(
                "SELECT nodes.name, pci_claims.address FROM pci_claims JOIN nodes "
                "ON nodes.id = pci_claims.node_id WHERE pci_claims.instance_id = :s"),
                {"s": server})}
    finally:
        engine.dispose()


def devices(node: JoinedNode, server: str) -> list[str] | None:
    """The PCI addresses node's desired state gives its agent for server (None: not
    there to run)."""
    with node.http() as client:
        desired = client.get(f"/cluster/v1/nodes/{node.id}/desired").json()
    found = [i for i in desired["instances"] if i["id"] == server]
    return found[0]["pci_devices"] if found else None


def test_cold_migrate_and_confirm_moves_the_device(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    assert claims(cloud, server) == {(a.name, GPU_A)}
    assert devices(a, server) == [GPU_A]
    cloud.openstack("server", "migrate", server)
    pair.wait(server, "VERIFY_RESIZE", b.name)
    assert pair.migration(server)["Type"] == "migration"
    # Both held until confirm; the destination's agent is given its own device.
    assert claims(cloud, server) == {(a.name, GPU_A), (b.name, GPU_B)}
    assert devices(b, server) == [GPU_B]
    assert devices(a, server) is None and server not in pair.destroyed(a)
    cloud.openstack("server", "resize", "confirm", server)
    pair.wait(server, "ACTIVE", b.name)
    assert claims(cloud, server) == {(b.name, GPU_B)}
    assert server in pair.destroyed(a) and devices(b, server) == [GPU_B]
    # A's device is free again: a new PCI server lands there.
    other = pair.boot(a.name)
    assert claims(cloud, other) == {(a.name, GPU_A)}
    for s in (server, other):
        cloud.openstack("server", "delete", "--wait", s)
    assert claims(cloud, server) == claims(cloud, other) == set()


def test_resize_and_revert_gives_the_source_device_back(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    cloud.openstack("server", "resize", "--flavor", f"{pair.image}-big", server)
    pair.wait(server, "VERIFY_RESIZE", b.name)
    assert claims(cloud, server) == {(a.name, GPU_A), (b.name, GPU_B)}
    assert devices(b, server) == [GPU_B]
    cloud.openstack("server", "resize", "revert", server)
    shown = pair.wait(server, "ACTIVE", a.name)
    assert f"{pair.image}-small" in str(shown["flavor"])
    assert pair.migration(server)["Status"] == "reverted"
    assert claims(cloud, server) == {(a.name, GPU_A)}
    assert devices(a, server) == [GPU_A] and server in pair.destroyed(b)
    # B's device is free again.
    other = pair.boot(b.name)
    assert claims(cloud, other) == {(b.name, GPU_B)}
    for s in (server, other):
        cloud.openstack("server", "delete", "--wait", s)


def test_no_free_device_elsewhere_changes_nothing_and_live_stays_refused(
        pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server, taker = pair.boot(a.name), pair.boot(b.name)
    for args in (("migrate",), ("resize", "--flavor", f"{pair.image}-big")):
        with pytest.raises(CommandFailed, match="No valid host") as err:
            cloud.openstack("server", *args, server)
        assert "PciPassthroughFilter" in str(err.value)
    with cloud.http(cloud.token()) as client:  # live: refused with Nova's 400 and words
        resp = client.post(f"{V}/servers/{server}/action", headers=mv("2.30"), json={
            "os-migrateLive": {"host": None, "block_migration": "auto"}})
    assert resp.status_code == 400 and resp.json()["badRequest"]["message"] == (
        "Migration pre-check error: non-VIF related PCI requests for instance are not "
        "allowed for live migration."), resp.text
    shown = pair.show(server)
    assert (shown["status"], shown["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", a.name)
    assert cloud.openstack("server", "migration", "list", "--server", server,
                           "-f", "json") == []
    assert claims(cloud, server) == {(a.name, GPU_A)}
    assert claims(cloud, taker) == {(b.name, GPU_B)}
    for s in (server, taker):
        cloud.openstack("server", "delete", "--wait", s)


def test_a_failed_move_and_a_delete_mid_move_release_the_devices(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    pair.agents[b.name].fail.add(server)  # B cannot receive its disk
    try:
        cloud.openstack("server", "migrate", server)
        wait_for(lambda: pair.migration(server)["Status"] == "error", 30, "the failure")
    finally:
        pair.agents[b.name].fail.discard(server)
    pair.wait(server, "ACTIVE", a.name)
    assert claims(cloud, server) == {(a.name, GPU_A)} and devices(a, server) == [GPU_A]
    # Deleted in VERIFY_RESIZE: both nodes' devices are free.
    cloud.openstack("server", "migrate", server)
    pair.wait(server, "VERIFY_RESIZE", b.name)
    cloud.openstack("server", "delete", "--wait", server)
    assert claims(cloud, server) == set()
    both = [pair.boot(a.name), pair.boot(b.name)]
    for s in both:
        cloud.openstack("server", "delete", "--wait", s)


def test_a_drain_cold_migrates_a_pci_server(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    try:
        status, view = call(cloud, "POST", f"{NODES}/{a.name}/drain")
        assert status == 202 and view["instances"] == 1, view
        done = wait_for(lambda: (v := call(cloud, "GET", f"{NODES}/{a.name}/drain")[1])[
            "finished"] and v, 60, "the drain to finish")
        assert (done["done"], done["stuck"], done["instances"]) == (1, [], 0), done
        pair.wait(server, "ACTIVE", b.name)
        assert (pair.migration(server)["Type"], pair.migration(server)["Status"]) == (
            "migration", "confirmed")
        assert claims(cloud, server) == {(b.name, GPU_B)}
        assert devices(b, server) == [GPU_B]
    finally:
        call(cloud, "POST", f"{NODES}/{a.name}/restore")
    cloud.openstack("server", "delete", "--wait", server)


def test_evacuation_claims_the_destination_device(pair: Pair) -> None:
    """Last: node A stays down."""
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    pair.agents[a.name].stop()
    cloud.openstack("compute", "service", "set", "--down", a.name, "nova-compute")
    with cloud.http(cloud.token()) as client:
        resp = client.post(f"{V}/servers/{server}/action", json={"evacuate": {}},
                           headers=mv("2.14"))
    assert resp.status_code == 200, resp.text
    pair.wait(server, "ACTIVE", b.name)
    assert claims(cloud, server) == {(b.name, GPU_B)}
    assert devices(b, server) == [GPU_B]
    cloud.openstack("server", "delete", "--wait", server)
