"""Self-fencing by lease: a dead node without a fence device is fenced after lease +
margin and evacuated; a node its peers still hear is partitioned, never fenced.

Three nodes join through the real join API; a small fake agent per node beats
every 0.3 s with its instances as running and a `peers` report (node id ->
seconds since it last heard that peer), which the test writes as the scenario
needs: node A falls silent, and its peers either stop hearing it (dead) or keep
hearing it (partitioned from the controller only).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.admin_api import admin_token, image_and_flavor, network_id, show_server
from tests.api.aggregate_nodes import JoinedNode, wait_for
from tests.api.lockout_cloud import own_cloud
from tests.cloud import Cloud, unique

V = "/compute/v2.1"
# Half the defaults (6 s + 2 s; MARGIN is the controller's floor): every wait here is the
# lease's, and what is proved (never fenced before lease + margin, never fenced while
# partitioned or autonomous past it) holds for any lease.
LEASE, MARGIN = 3.0, 1.0


class PeerAgent:
    """Beats every 0.3 s with what its desired state runs, and peers() as its report."""

    def __init__(self, node: JoinedNode, peers: Callable[[], dict[str, float]]) -> None:
        self.node, self.peers, self.stopping = node, peers, threading.Event()
        self.last_sent = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def desired(self) -> dict[str, Any]:
        with self.node.http() as client:
            return client.get(f"/cluster/v1/nodes/{self.node.id}/desired",
                              params={"wait": 0}).json()

    def _run(self) -> None:
        while not self.stopping.wait(0.3):
            try:
                self._beat()
            except httpx.HTTPError:
                pass  # a slow controller; the next beat tells

    def _beat(self) -> None:
        wanted = self.desired().get("instances", [])
        report = {i["id"]: {"state": "running", "reboot_serial": i["reboot_serial"],
                            "rebuild_serial": i["rebuild_serial"]} for i in wanted}
        sent = time.monotonic()
        with self.node.http() as client:
            resp = client.post(f"/cluster/v1/nodes/{self.node.id}/heartbeat", json={
                "overlay": {}, "instances": report, "peers": self.peers()})
        if resp.status_code == 200:
            self.last_sent = sent  # the controller heard the node no earlier than this

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    """A controller of its own with automatic evacuation on (the shared one has it off)."""
    yield from own_cloud(engine, ha_auto_evacuate=True, ha_lease=LEASE, ha_lease_margin=MARGIN)


class Trio:
    """Nodes A, B, C; B and C hear A until a_silent_since is set, then not."""

    def __init__(self, cloud: Cloud, tmp: Path) -> None:
        self.nodes = [JoinedNode(cloud, tmp, f"lease{x}") for x in "abc"]
        self.a, self.b, self.c = self.nodes
        self.a_silent_since: float | None = None
        ids = [n.id for n in self.nodes]
        self.agents = [PeerAgent(n, self._report(n.id, ids)) for n in self.nodes]

    def _report(self, me: str, ids: list[str]) -> Callable[[], dict[str, float]]:
        def peers() -> dict[str, float]:
            gone = self.a_silent_since
            return {p: (time.monotonic() - gone if p == self.a.id and gone else 0.2)
                    for p in ids if p != me}
        return peers

    def close(self) -> None:
        for agent in self.agents:
            agent.stop()
        for node in self.nodes:
            node.remove()


@pytest.fixture(scope="module")
def image(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The module's image, and its flavor named after it."""
    yield from image_and_flavor(cloud, tmp_path_factory, "leaseimg")


@pytest.fixture()
def trio(cloud: Cloud, tmp_path: Path, image: str) -> Iterator[tuple[Trio, str]]:
    nodes = Trio(cloud, tmp_path)
    try:
        yield nodes, image
    finally:
        for server in cloud.openstack("server", "list", "--all-projects", "-f", "json"):
            if server["Name"].startswith("leasesrv"):
                cloud.openstack("server", "delete", server["ID"])
        nodes.close()


def boot(cloud: Cloud, image: str, host: str, *extra: str) -> dict[str, Any]:
    """Created with the CLI; waited for over HTTP (admin_api: a look costs a GET)."""
    made = cloud.openstack("server", "create", "--flavor", image + "-flavor", "--image", image,
                           "--nic", f"net-id={network_id(cloud, 'private')}",
                           "--availability-zone", f"nova:{host}",
                           *extra, unique("leasesrv"), "-f", "json")
    return wait_for(lambda: (s := show_server(cloud, made["id"]))["status"] == "ACTIVE" and s, 30,
                    "server ACTIVE")


def node_view(cloud: Cloud, name: str) -> dict[str, Any]:
    with cloud.http(admin_token(cloud)) as client:
        return client.get(f"/cluster/v1/nodes/{name}").json()


def show(cloud: Cloud, sid: str) -> dict[str, Any]:
    with cloud.http(admin_token(cloud)) as client:
        return client.get(f"{V}/servers/{sid}", headers={
            "OpenStack-API-Version": "compute 2.16"}).json()["server"]


def events(cloud: Cloud, sid: str) -> dict[str, dict[str, Any]]:
    """The events of the server's evacuate action, by name (the latest of each)."""
    headers = {"OpenStack-API-Version": "compute 2.84"}
    with cloud.http(admin_token(cloud)) as client:
        listed = client.get(f"{V}/servers/{sid}/os-instance-actions",
                            headers=headers).json()["instanceActions"]
        evac = next(x for x in listed if x["action"] == "evacuate")
        shown = client.get(f"{V}/servers/{sid}/os-instance-actions/{evac['request_id']}",
                           headers=headers).json()["instanceAction"]
    return {e["event"]: e for e in shown["events"]}


def test_dead_node_without_fence_device_is_fenced_by_lease_then_evacuated(
        cloud: Cloud, trio: tuple[Trio, str]) -> None:
    nodes, image = trio
    ha = boot(cloud, image, nodes.a.name)
    manual = boot(cloud, image, nodes.a.name, "--property", "HA_Enabled=False")
    block = nodes.agents[0].desired()["ha"]
    assert block["lease"] == LEASE and block["protected"] == [ha["id"]]

    nodes.agents[0].stop()  # A powers off: its peers stop hearing it too
    nodes.a_silent_since = time.monotonic()
    silent = nodes.agents[0].last_sent
    wait_for(lambda: node_view(cloud, nodes.a.name)["fence_state"] == "failed", 10,
             "fencing failed (no device)")
    view = wait_for(lambda: (v := node_view(cloud, nodes.a.name))["fence_state"] == "ok"
                    and v, LEASE + MARGIN + 10, "fenced by lease")
    waited = time.monotonic() - silent
    print(f"\nfenced by lease after {waited:.1f} s of silence")
    assert waited >= LEASE + MARGIN  # never before lease + margin
    assert view["fence_method"] == "lease" and "fenced by lease" in view["fence_message"]
    moved = wait_for(lambda: (s := show(cloud, ha["id"]))["status"] == "ACTIVE"
                     and s["OS-EXT-SRV-ATTR:host"] != nodes.a.name and s, 20, "HA server moved")
    assert moved["OS-EXT-SRV-ATTR:host"] in (nodes.b.name, nodes.c.name)
    fenced = events(cloud, ha["id"])["ha_fence_node"]
    assert fenced["result"] == "Success" and "fenced by lease" in fenced["details"]
    assert "conductor_rebuild_server" in events(cloud, ha["id"])
    # The lease killed only HA instances: the opted-out one may still run on A.
    assert show(cloud, manual["id"])["OS-EXT-SRV-ATTR:host"] == nodes.a.name
    with cloud.http(admin_token(cloud)) as client:
        refused = client.post(f"{V}/servers/{manual['id']}/action",
                              json={"evacuate": {}}, headers={
                                  "OpenStack-API-Version": "compute 2.14"})
    assert refused.status_code == 409 and "fenced itself by lease" in refused.text


def test_partitioned_node_is_never_fenced_by_lease_nor_evacuated(
        cloud: Cloud, trio: tuple[Trio, str]) -> None:
    nodes, image = trio
    ha = boot(cloud, image, nodes.a.name)
    nodes.agents[0].stop()  # A is cut from the controller only: B and C still hear it
    silent = time.monotonic()
    view = wait_for(lambda: (v := node_view(cloud, nodes.a.name))["fence_message"]
                    and "peers still hear it" in v["fence_message"] and v, 16, "partitioned")
    assert view["health"] == "down" and view["fence_state"] == "failed"
    time.sleep(max(0.0, silent + LEASE + MARGIN + 2.0 - time.monotonic()))
    view = node_view(cloud, nodes.a.name)
    assert view["fence_state"] == "failed" and view["fenced_at"] is None
    assert "partitioned from the controller, peers still hear it" in view["fence_message"]
    server = show(cloud, ha["id"])
    assert server["OS-EXT-SRV-ATTR:host"] == nodes.a.name
    assert server["host_status"] == "UNKNOWN"
    said = events(cloud, ha["id"])
    assert said["ha_partitioned"]["result"] == "Error"
    assert "conductor_rebuild_server" not in said


def _policy(cloud: Cloud, node: JoinedNode, policy: str) -> str:
    """An aggregate holding node with ha_policy=policy (the CLI's create, then set)."""
    name = unique(f"ha-{policy}")
    cloud.openstack("aggregate", "create", "--property", f"ha_policy={policy}", name)
    cloud.openstack("aggregate", "add", "host", name, node.name)
    return name


def _drop(cloud: Cloud, aggregate: str, node: JoinedNode) -> None:
    cloud.openstack("aggregate", "remove", "host", aggregate, node.name)
    cloud.openstack("aggregate", "delete", aggregate)


def test_an_unknown_ha_policy_is_refused(cloud: Cloud) -> None:
    name = unique("ha-bad")
    agg = cloud.openstack("aggregate", "create", name, "-f", "json")
    try:
        with cloud.http(admin_token(cloud)) as client:
            resp = client.post(f"/compute/v2.1/os-aggregates/{agg['id']}/action", json={
                "set_metadata": {"metadata": {"ha_policy": "sometimes"}}})
        assert resp.status_code == 400, resp.text
        assert "expected one of evacuate, manual, autonomous" in resp.text
        shown = cloud.openstack("aggregate", "show", name, "-f", "json")
        assert "ha_policy" not in (shown.get("properties") or {})
    finally:
        cloud.openstack("aggregate", "delete", name)


def test_autonomous_node_is_neither_fenced_nor_evacuated(
        cloud: Cloud, trio: tuple[Trio, str]) -> None:
    """An edge node cut off entirely: its agent gets nothing to kill, the controller
    fences nothing and moves nothing, however long the silence."""
    nodes, image = trio
    aggregate = _policy(cloud, nodes.a, "autonomous")
    try:
        ha = boot(cloud, image, nodes.a.name)
        block = wait_for(lambda: (b := nodes.agents[0].desired()["ha"])["lease"] and b, 5,
                         "the ha block")
        assert block["protected"] == []  # the lease kills nothing on an autonomous node
        nodes.agents[0].stop()
        nodes.a_silent_since = silent = time.monotonic()  # its peers lose it too
        view = wait_for(lambda: (v := node_view(cloud, nodes.a.name))["fence_state"]
                        and v, 10, "the monitor's verdict")
        assert view["fence_state"] == "skipped", view
        assert "policy autonomous" in view["fence_message"]
        time.sleep(max(0.0, silent + LEASE + MARGIN + 2.0 - time.monotonic()))
        view = node_view(cloud, nodes.a.name)
        assert view["fence_state"] == "skipped" and view["fenced_at"] is None
        server = show(cloud, ha["id"])
        assert server["OS-EXT-SRV-ATTR:host"] == nodes.a.name
        assert server["status"] == "ACTIVE"
        headers = {"OpenStack-API-Version": "compute 2.84"}
        with cloud.http(admin_token(cloud)) as client:
            listed = client.get(f"{V}/servers/{ha['id']}/os-instance-actions",
                                headers=headers).json()["instanceActions"]
        assert "evacuate" not in [a["action"] for a in listed]
    finally:
        _drop(cloud, aggregate, nodes.a)


def test_manual_node_is_fenced_but_not_evacuated(cloud: Cloud,
                                                 trio: tuple[Trio, str]) -> None:
    nodes, image = trio
    aggregate = _policy(cloud, nodes.a, "manual")
    try:
        ha = boot(cloud, image, nodes.a.name)
        block = wait_for(lambda: (b := nodes.agents[0].desired()["ha"])["protected"] and b,
                         5, "the ha block")
        assert block["protected"] == [ha["id"]]  # fenced as under evacuate
        nodes.agents[0].stop()
        nodes.a_silent_since = time.monotonic()
        wait_for(lambda: node_view(cloud, nodes.a.name)["fence_state"] == "ok",
                 LEASE + MARGIN + 10, "fenced by lease")
        time.sleep(2.0)  # several monitor passes: auto-evacuation would have started
        server = show(cloud, ha["id"])
        assert server["OS-EXT-SRV-ATTR:host"] == nodes.a.name
        assert server["host_status"] == "DOWN"  # known off: the operator may evacuate
        headers = {"OpenStack-API-Version": "compute 2.84"}
        with cloud.http(admin_token(cloud)) as client:
            listed = client.get(f"{V}/servers/{ha['id']}/os-instance-actions",
                                headers=headers).json()["instanceActions"]
            assert "evacuate" not in [a["action"] for a in listed]
            moved = client.post(f"{V}/servers/{ha['id']}/action", json={"evacuate": {}},
                                headers={"OpenStack-API-Version": "compute 2.14"})
        assert moved.status_code == 200, moved.text  # the operator's evacuate works
        wait_for(lambda: (s := show(cloud, ha["id"]))["status"] == "ACTIVE"
                 and s["OS-EXT-SRV-ATTR:host"] != nodes.a.name, 20, "moved by hand")
    finally:
        _drop(cloud, aggregate, nodes.a)
