"""/metrics of a controller serving from two worker processes: one scrape, served by
either worker, holds the requests both answered and the instance counters relayed from
a heartbeat that the other received (prometheus_client's multiprocess mode, and the
relay's per-node files in the state directory)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from atwill.agent.client import tls_context
from tests.api.aggregate_nodes import JoinedNode
from tests.api.test_controller_workers import by_worker, cloud  # noqa: F401 (fixture)
from tests.api.worker_procs import Connection
from tests.cloud import Cloud, unique

Samples = dict[tuple[str, frozenset], float]
COUNTERS = {"cpu_seconds": 7.5, "net_rx_bytes": 3000}


def scrape(conn: Connection, token: str) -> Samples:
    conn.http.request("GET", "/metrics", headers={"X-Auth-Token": token})
    resp = conn.http.getresponse()
    text = resp.read().decode()
    assert resp.status == 200, text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_one_scrape_counts_the_requests_of_both_workers(cloud: Cloud) -> None:  # noqa: F811
    token = cloud.token()
    conns = by_worker(cloud)
    try:
        route = {"service": "identity", "route": "/identity/v3"}
        before = [scrape(conn, token) for conn in conns.values()]
        for times, conn in zip((3, 5), conns.values(), strict=True):
            for _ in range(times):
                assert conn.call("GET", "/identity/v3")[0] == 200
        for conn, was in zip(conns.values(), before, strict=True):
            found = scrape(conn, token)
            assert value(found, "atwill_api_requests_total", **route, method="GET",
                         code="200") == value(was, "atwill_api_requests_total", **route,
                                              method="GET", code="200") + 8, conn.pid
            assert value(found, "atwill_api_request_duration_seconds_count", **route) == \
                value(was, "atwill_api_request_duration_seconds_count", **route) + 8
        # Each worker's cache holds the admin token now: the scrapes sum both caches.
        entries = {scrape(conn, token)[("atwill_token_cache_entries", frozenset())]
                   for conn in conns.values()}
        assert len(entries) == 1 and entries.pop() >= 2
    finally:
        for conn in conns.values():
            conn.close()


@dataclass
class Placed:
    node: JoinedNode
    server: str


@pytest.fixture
def placed(cloud: Cloud, tmp_path: Path) -> Iterator[Placed]:  # noqa: F811
    """A server the scheduler placed on a joined node."""
    node = JoinedNode(cloud, tmp_path, "mwnode")
    flavor = unique("mwflv")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    (tmp_path / "disk.img").write_bytes(os.urandom(64 * 1024))
    image = cloud.openstack("image", "create", "--file", str(tmp_path / "disk.img"),
                            "--disk-format", "raw", "--container-format", "bare",
                            unique("mwimg"), "-f", "json")["id"]
    node.beat()
    server = cloud.openstack("server", "create", "--flavor", flavor, "--image", image,
                             "--no-network", unique("mwsrv"), "-f", "json")["id"]
    try:
        deadline = time.monotonic() + 20
        while not (shown := cloud.openstack("server", "show", server, "-f", "json")
                   )["OS-EXT-SRV-ATTR:host"]:
            assert time.monotonic() < deadline and shown["status"] != "ERROR", shown
            time.sleep(0.2)
        assert shown["OS-EXT-SRV-ATTR:host"] == node.name, shown
        yield Placed(node, server)
    finally:
        cloud.openstack("server", "delete", server)
        cloud.openstack("flavor", "delete", flavor)
        cloud.openstack("image", "delete", image)
        node.remove()


def test_counters_relayed_to_one_worker_are_scraped_from_the_other(
        cloud: Cloud, placed: Placed, tmp_path: Path) -> None:  # noqa: F811
    node, token = placed.node, cloud.token()
    as_node = by_worker(cloud, tls_context(Path(cloud.cacert), tmp_path / f"{node.name}.pem",
                                           tmp_path / f"{node.name}-key.pem"))
    as_admin = by_worker(cloud)
    try:
        for receiver, other in (tuple(as_node), tuple(reversed(as_node))):
            reading = {**COUNTERS, "cpu_seconds": float(receiver % 1000)}
            status, body = as_node[receiver].call(
                "POST", f"/cluster/v1/nodes/{node.id}/heartbeat",
                body={"overlay": {}, "instances": {placed.server: {
                    "state": "running", "metrics": reading}}})
            assert status == 200, body
            found = scrape(as_admin[other], token)
            labels = {"instance_id": placed.server, "node": node.name}
            series = {dict(key[1]).get("project_id"): val for key, val in found.items()
                      if key[0] == "atwill_instance_cpu_seconds_total"
                      and labels.items() <= dict(key[1]).items()}
            assert list(series.values()) == [reading["cpu_seconds"]], (receiver, other)
        # The build, launched by the running report, is counted once, not once per worker.
        builds = [value(scrape(as_admin[pid], token),
                        "atwill_instance_build_duration_seconds_count")
                  for pid in (*as_admin, *as_admin)]
        assert builds[0] >= 1 and len(set(builds)) == 1, builds
        relayed = cloud.state_dir / "metrics-relay"
        assert json.loads((relayed / node.id).read_text())[placed.server] == reading
        assert oct((relayed / node.id).stat().st_mode & 0o777) == oct(0o600)
    finally:
        for conn in (*as_node.values(), *as_admin.values()):
            conn.close()

