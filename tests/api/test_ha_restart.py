"""A graceful agent restart: a node whose agent gave a restart notice is neither fenced nor
evacuated past the 2.6 s down threshold, is fenced and evacuated once the notice's deadline
passed without it, and a crash (no notice) is fenced as before.

Nodes join through the real join API; a fake agent per node beats every 0.3 s with its
instances as running and a `peers` report, in which the healthy nodes say they no longer
hear the silent ones (the agent answers the peers' probes: a restarting one does not).
Fencing is by lease (no fence device), made short here: lease 1 s + margin 1 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.admin_api import image_and_flavor, show_server
from tests.api.aggregate_nodes import JoinedNode, wait_for
from tests.api.lockout_cloud import own_cloud
from tests.api.test_cluster import Node, token
from tests.api.test_ha_lease import PeerAgent, node_view, show
from tests.cloud import Cloud, unique

NOTICE = 6.0  # seconds: past the 2.6 s threshold, short for the suite
LEASE, MARGIN = 1.0, 1.0


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    """A controller of its own: automatic evacuation on, a short lease."""
    yield from own_cloud(engine, ha_auto_evacuate=True, ha_lease=LEASE,
                         ha_lease_margin=MARGIN)


class Nodes:
    """Joined nodes with fake agents; the others stop hearing a node once it is silent."""

    def __init__(self, cloud: Cloud, tmp: Path, names: str) -> None:
        self.nodes = [JoinedNode(cloud, tmp, f"rst{x}") for x in names]
        self.silent_since: dict[str, float] = {}
        self.agents = {n.id: self._agent(n) for n in self.nodes}

    def _agent(self, node: JoinedNode) -> PeerAgent:
        def peers() -> dict[str, float]:
            now = time.monotonic()
            return {p.id: now - self.silent_since.get(p.id, now - 0.2) for p in self.nodes
                    if p.id != node.id}
        return PeerAgent(node, peers)

    def silence(self, node: JoinedNode) -> None:
        self.agents[node.id].stop()
        self.silent_since[node.id] = time.monotonic()

    def resume(self, node: JoinedNode) -> None:
        self.silent_since.pop(node.id, None)
        self.agents[node.id] = self._agent(node)

    def close(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        for node in self.nodes:
            node.remove()


@pytest.fixture(scope="module")
def image(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The module's image, and its flavor named after it."""
    yield from image_and_flavor(cloud, tmp_path_factory, "rstimg")


def _with_nodes(cloud: Cloud, tmp_path: Path, names: str,
                image: str) -> Iterator[tuple[Nodes, str]]:
    nodes = Nodes(cloud, tmp_path, names)
    try:
        # Heard at least once: a node never heard is still starting, and judged later.
        wait_for(lambda: all(ag.last_sent for ag in nodes.agents.values()), 10, "beats")
        yield nodes, image
    finally:
        for server in cloud.openstack("server", "list", "--all-projects", "-f", "json"):
            if server["Name"].startswith("rstsrv"):
                cloud.openstack("server", "delete", server["ID"])
        nodes.close()


@pytest.fixture()
def four(cloud: Cloud, tmp_path: Path, image: str) -> Iterator[tuple[Nodes, str]]:
    """A restarts, B and D stay, C crashes."""
    yield from _with_nodes(cloud, tmp_path, "abcd", image)


@pytest.fixture()
def two(cloud: Cloud, tmp_path: Path, image: str) -> Iterator[tuple[Nodes, str]]:
    yield from _with_nodes(cloud, tmp_path, "ab", image)


def boot(cloud: Cloud, image: str, host: str) -> dict[str, Any]:
    made = cloud.openstack("server", "create", "--flavor", image + "-flavor", "--image", image,
                           "--network", "private", "--availability-zone", f"nova:{host}",
                           unique("rstsrv"), "-f", "json")
    return wait_for(lambda: (s := show_server(cloud, made["id"]))["status"] == "ACTIVE" and s, 30,
                    "server ACTIVE")  # over HTTP (admin_api: a look costs a GET)


def notice(node: JoinedNode, body: Any, node_id: str | None = None) -> Any:
    with node.http() as client:
        return client.post(f"/cluster/v1/nodes/{node_id or node.id}/restart-notice", json=body)


def moved(cloud: Cloud, sid: str, old: str) -> dict[str, Any]:
    return wait_for(lambda: (s := show(cloud, sid))["status"] == "ACTIVE"
                    and s["OS-EXT-SRV-ATTR:host"] != old and s, 20, "server evacuated")


def test_a_notice_holds_off_fencing_until_its_deadline_a_crash_does_not(
        cloud: Cloud, four: tuple[Nodes, str]) -> None:
    nodes, image = four
    a, b, c, d = nodes.nodes
    on_a, on_c = boot(cloud, image, a.name), boot(cloud, image, c.name)
    nodes.silence(c)  # C crashes: no notice
    nodes.silence(a)  # A stops on purpose, after a notice
    silent = time.monotonic()  # the controller got the notice no earlier
    given = notice(a, {"seconds": NOTICE, "reason": "upgrade"})
    assert given.status_code == 200, given.text
    crashed = wait_for(lambda: (v := node_view(cloud, c.name))["fence_state"] == "ok"
                       and v, 15, "C fenced")
    assert crashed["fence_method"] == "lease"
    # The scheduler spreads: the evacuation goes to B or D, which hold nothing.
    assert moved(cloud, on_c["id"], c.name)["OS-EXT-SRV-ATTR:host"] in (b.name, d.name)
    # Well past the 2.6 s threshold, and its peers no longer hear it: A is left alone.
    time.sleep(max(0.0, silent + 3.5 - time.monotonic()))
    view = node_view(cloud, a.name)
    assert time.monotonic() - silent < NOTICE
    assert (view["health"], view["state"], view["fence_state"]) == ("restarting", "up", None)
    server = show(cloud, on_a["id"])
    assert (server["status"], server["OS-EXT-SRV-ATTR:host"], server["host_status"]) == (
        "ACTIVE", a.name, "UNKNOWN")
    # Not back by the deadline: detected, fenced (the lease from the deadline), evacuated.
    view = wait_for(lambda: (v := node_view(cloud, a.name))["fence_state"] == "ok"
                    and v, NOTICE + LEASE + MARGIN + 10, "A fenced after its deadline")
    waited = time.monotonic() - silent
    assert waited >= NOTICE + LEASE + MARGIN, waited
    assert view["health"] == "down" and "fenced by lease" in view["fence_message"]
    assert moved(cloud, on_a["id"], a.name)["OS-EXT-SRV-ATTR:host"] in (
        b.name, d.name)


def test_a_node_back_within_its_notice_is_never_down_and_reports_again(
        cloud: Cloud, two: tuple[Nodes, str]) -> None:
    nodes, image = two
    a, b = nodes.nodes
    on_a = boot(cloud, image, a.name)
    nodes.silence(a)
    assert notice(a, {"seconds": 60}).status_code == 200
    again = notice(a, {"seconds": 600})  # only a heartbeat ends a notice: no chain of them
    assert again.status_code == 409 and "already gave" in again.json()["error"]["message"]
    time.sleep(3.0)  # past the 2.6 s threshold
    assert node_view(cloud, a.name)["health"] == "restarting"
    assert show(cloud, on_a["id"])["host_status"] == "UNKNOWN"
    nodes.resume(a)  # its first heartbeat ends the notice
    wait_for(lambda: node_view(cloud, a.name)["health"] == "up", 5, "A up again")
    view = node_view(cloud, a.name)
    assert (view["state"], view["fence_state"]) == ("up", None)
    assert show(cloud, on_a["id"])["host_status"] == "UP"


def test_bad_or_foreign_notices_are_refused_and_change_nothing(
        cloud: Cloud, two: tuple[Nodes, str]) -> None:
    nodes, _ = two
    a, b = nodes.nodes
    for body in ({}, {"seconds": 0}, {"seconds": 601}, {"seconds": "60"}, {"seconds": True},
                 {"seconds": 60, "node": a.id}, [60], None, {"seconds": 10 ** 400},
                 {"seconds": 60, "agent_run": "not hex"}):
        resp = notice(b, body)
        assert resp.status_code == 400, (body, resp.text)
        assert resp.json()["error"]["message"]
    with b.http() as client:
        resp = client.post(f"/cluster/v1/nodes/{b.id}/restart-notice", content=b"{not json")
    assert resp.status_code == 400, resp.text
    resp = notice(b, {"seconds": 60}, node_id=a.id)  # B's certificate, A's notice
    assert resp.status_code == 403, resp.text
    with cloud.http(cloud.token()) as client:  # an admin's token is no node certificate
        resp = client.post(f"/cluster/v1/nodes/{a.id}/restart-notice", json={"seconds": 60})
    assert resp.status_code == 401, resp.text
    nodes.silence(a)  # no notice was kept: A is down as after a crash
    wait_for(lambda: node_view(cloud, a.name)["health"] == "down", 10, "A down")


@pytest.mark.engine_free("the agent's side; the notice's handling runs on PostgreSQL in "
                         "the tests above")
def test_a_real_agent_gives_its_notice_on_sigterm(cloud: Cloud, tmp_path: Path) -> None:
    """`atwill agent` itself: stopped with SIGTERM, its node is restarting, not down."""
    node = Node(cloud, tmp_path, unique("rstagent"))
    node.join(token(cloud))
    try:
        joined = node_view(cloud, node.name)["last_heartbeat"]
        wait_for(lambda: node_view(cloud, node.name)["last_heartbeat"] != joined, 20,
                 "the agent's first heartbeat")
        node.stop()  # SIGTERM, and the agent exits
        stopped = time.monotonic()
        wait_for(lambda: node_view(cloud, node.name)["health"] == "restarting", 5,
                 "the node restarting")
        time.sleep(max(0.0, stopped + 3.5 - time.monotonic()))
        view = node_view(cloud, node.name)
        assert (view["health"], view["state"], view["fence_state"]) == ("restarting", "up",
                                                                        None)
    finally:
        node.stop()
        cloud.atwill("node", "remove", node.name, "--force", check=False)
