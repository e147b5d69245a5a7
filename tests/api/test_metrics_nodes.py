"""/metrics per node and per instance: the hypervisor figures, the scheduler's decisions,
and the counters a node reports for its instances (relayed from its heartbeats).

The node is joined through the real join API and speaks with its certificate; the
server is created with the real CLI and placed by the scheduler on that node.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.aggregate_nodes import JoinedNode
from tests.cloud import Cloud, unique

MIB, GIB = 2 ** 20, 2 ** 30
COUNTERS = {"cpu_seconds": 12.5, "memory_rss_bytes": 70 * MIB, "disk_read_bytes": 4096,
            "disk_write_bytes": 512, "net_rx_bytes": 1000, "net_tx_bytes": 2000}
# OSC's hypervisor show parses the uptime line an agent's host report makes.
HOST = {"uptime_s": 3600, "loadavg": [0.1, 0.2, 0.3], "time": "05:00:00"}


def scrape_text(cloud: Cloud) -> tuple[str, dict[tuple[str, frozenset], float]]:
    with cloud.http(cloud.token()) as client:
        resp = client.get("/metrics")
    assert resp.status_code == 200, resp.text
    return resp.text, {(s.name, frozenset(s.labels.items())): s.value
                       for family in text_string_to_metric_families(resp.text)
                       for s in family.samples}


def scrape(cloud: Cloud) -> dict[tuple[str, frozenset], float]:
    return scrape_text(cloud)[1]


def scrape_until(cloud: Cloud, ok: Callable[[dict[tuple[str, frozenset], float]], bool],
                 timeout: float = 5.0) -> tuple[str, dict[tuple[str, frozenset], float]]:
    """The scrape once `ok` holds (or the last one after `timeout`, for the assertions to
    show): a node's host report reaches the database with its beat's batch, within the
    lean heartbeat path's staleness bound (cluster/liveness.py), not at the beat's reply."""
    deadline = time.monotonic() + timeout
    while True:
        text, found = scrape_text(cloud)
        if ok(found) or time.monotonic() > deadline:
            return text, found
        time.sleep(0.05)


def labelled(found: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


@dataclass
class Env:
    cloud: Cloud
    node: JoinedNode
    server: dict
    image: str
    placed_before: float

    def report(self, **entry: object) -> None:
        """A heartbeat reporting the server running, with its host's uptime as an agent's."""
        with self.node.http() as client:
            resp = client.post(f"/cluster/v1/nodes/{self.node.id}/heartbeat", json={
                "overlay": {}, "host": HOST,
                "instances": {self.server["id"]: {"state": "running", **entry}}})
        assert resp.status_code == 200, resp.text


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A server placed on a joined node that reports it running, with its counters."""
    tmp = tmp_path_factory.mktemp("metricsnodes")
    node = JoinedNode(cloud, tmp, "metricshost")
    flavor = unique("metflv")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    (tmp / "disk.img").write_bytes(os.urandom(64 * 1024))
    image = cloud.openstack("image", "create", "--file", str(tmp / "disk.img"),
                            "--disk-format", "raw", "--container-format", "bare",
                            unique("metimg"), "-f", "json")["id"]
    placed = labelled(scrape(cloud), "atwill_scheduler_placements_total", result="placed")
    node.beat()
    server = cloud.openstack("server", "create", "--flavor", flavor, "--image", image,
                             "--no-network", unique("metsrv"), "-f", "json")
    try:
        deadline = time.monotonic() + 20
        while not (shown := cloud.openstack("server", "show", server["id"], "-f", "json")
                   )["OS-EXT-SRV-ATTR:host"]:
            assert time.monotonic() < deadline and shown["status"] != "ERROR", shown
            time.sleep(0.2)
        assert shown["OS-EXT-SRV-ATTR:host"] == node.name, shown
        made = Env(cloud, node, shown, image, placed)
        made.report(metrics=COUNTERS)
        yield made
    finally:
        cloud.openstack("server", "delete", server["id"])
        cloud.openstack("flavor", "delete", flavor)
        cloud.openstack("image", "delete", image)
        node.remove()


def test_placements_are_counted_by_result(env: Env) -> None:
    cloud = env.cloud
    found = scrape(cloud)
    assert labelled(found, "atwill_scheduler_placements_total", result="placed") \
        >= env.placed_before + 1
    failed = labelled(found, "atwill_scheduler_placements_total", result="no_valid_host")
    big = unique("metbig")
    # More disk than any node has (the disk ratio is 1; vCPUs and RAM are overcommitted).
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "4000", "--vcpus", "1", big)
    try:
        env.node.beat()
        name = unique("metnvh")
        cloud.openstack("server", "create", "--flavor", big, "--image", env.image,
                        "--no-network", name)
        deadline = time.monotonic() + 20
        while (shown := cloud.openstack("server", "show", name, "-f", "json")
               )["status"] != "ERROR":
            assert time.monotonic() < deadline, shown
            time.sleep(0.2)
        assert "No valid host" in shown["fault"]["message"], shown
        cloud.openstack("server", "delete", shown["id"])
    finally:
        cloud.openstack("flavor", "delete", big)
    assert labelled(scrape(cloud), "atwill_scheduler_placements_total",
                    result="no_valid_host") == failed + 1


def test_node_figures_are_what_the_hypervisor_api_shows(env: Env) -> None:
    cloud, name = env.cloud, env.node.name
    env.report(metrics=COUNTERS)  # up again, however long the tests before took
    found = scrape(cloud)
    hyp = cloud.openstack("--os-compute-api-version", "2.87", "hypervisor", "show", name,
                          "-f", "json")
    stats = cloud.openstack("--os-compute-api-version", "2.87", "hypervisor", "stats",
                            "show", "-f", "json")
    for metric, field, scale in (
            ("vcpus", "vcpus", 1), ("vcpus_used", "vcpus_used", 1),
            ("memory_bytes", "memory_mb", MIB), ("memory_used_bytes", "memory_mb_used", MIB),
            ("disk_bytes", "local_gb", GIB), ("disk_used_bytes", "local_gb_used", GIB),
            ("running_vms", "running_vms", 1)):
        assert labelled(found, f"atwill_node_{metric}", node=name) == hyp[field] * scale
        total = sum(v for (n, _), v in found.items() if n == f"atwill_node_{metric}")
        assert total == stats[field] * scale, metric
    assert hyp["vcpus_used"] == 1 and hyp["memory_mb_used"] == 64  # the server's claim
    assert labelled(found, "atwill_node_up", node=name) == (hyp["state"] == "up") == 1
    assert labelled(found, "atwill_node_enabled", node=name) == 1
    assert labelled(found, "atwill_node_instances", node=name) == 1
    assert labelled(found, "atwill_node_health", node=name, health="up") == 1
    assert labelled(found, "atwill_node_health", node=name, health="down") == 0


def test_a_nodes_counters_for_its_instance_are_relayed(env: Env) -> None:
    ident, node = env.server["id"], env.node.name
    env.report(metrics=COUNTERS)
    found = scrape(env.cloud)
    labels = {"instance_id": ident, "project_id": env.server["project_id"], "node": node}
    for name, value in (("cpu_seconds_total", 12.5), ("disk_read_bytes_total", 4096),
                        ("disk_written_bytes_total", 512), ("network_receive_bytes_total",
                                                            1000),
                        ("network_transmit_bytes_total", 2000),
                        ("memory_resident_bytes", 70 * MIB), ("vcpus", 1),
                        ("memory_bytes", 64 * MIB), ("disk_bytes", GIB)):
        assert labelled(found, f"atwill_instance_{name}", **labels) == value, name
    assert labelled(found, "atwill_instance_state", **labels, state="active") == 1
    # A report without the counters (QEMU stopped, an older agent): the series go.
    env.report()
    found = scrape(env.cloud)
    assert ("atwill_instance_cpu_seconds_total", frozenset(labels.items())) not in found
    assert labelled(found, "atwill_instance_vcpus", **labels) == 1


@pytest.mark.parametrize(("metrics", "words"), [
    ({"cpu_seconds": 1, "fan_rpm": 3}, "unknown keys (fan_rpm)"),
    ({"net_rx_bytes": -5}, "net_rx_bytes"),
    ("lots", "not an object"),
])
def test_bad_counters_are_refused_and_change_nothing(env: Env, metrics: object,
                                                     words: str) -> None:
    env.report(metrics=COUNTERS)
    with env.node.http() as client:
        resp = client.post(f"/cluster/v1/nodes/{env.node.id}/heartbeat", json={
            "overlay": {}, "instances": {env.server["id"]: {"state": "shutoff",
                                                            "metrics": metrics}}})
    assert resp.status_code == 400 and words in resp.text, resp.text
    found = scrape(env.cloud)
    labels = {"instance_id": env.server["id"], "project_id": env.server["project_id"],
              "node": env.node.name}
    assert labelled(found, "atwill_instance_cpu_seconds_total", **labels) == 12.5
    assert labelled(found, "atwill_instance_state", **labels, state="active") == 1


# What an agent reads of its host (agent/host_metrics.py), as its heartbeat sends it.
HOST_FIGURES = {
    "cpu_seconds": {"user": 120.5, "nice": 1.0, "system": 30.25, "idle": 9000.0,
                    "iowait": 2.0, "irq": 0.0, "softirq": 0.5, "steal": 0.0},
    "memory_total_bytes": 16 * GIB, "memory_available_bytes": 9 * GIB,
    "load1": 0.5, "load5": 0.25, "load15": 0.125,
    "filesystem_size_bytes": 100 * GIB, "filesystem_avail_bytes": 40 * GIB,
    "overlay_receive_bytes": 123456, "overlay_transmit_bytes": 654321}
HOST_SERIES = {
    "atwill_node_memory_total_bytes": 16 * GIB, "atwill_node_memory_available_bytes": 9 * GIB,
    "atwill_node_load1": 0.5, "atwill_node_load5": 0.25, "atwill_node_load15": 0.125,
    "atwill_node_filesystem_size_bytes": 100 * GIB,
    "atwill_node_filesystem_avail_bytes": 40 * GIB,
    "atwill_node_overlay_receive_bytes_total": 123456,
    "atwill_node_overlay_transmit_bytes_total": 654321}


def _host_beat(env: Env, figures: object) -> httpx.Response:
    with env.node.http() as client:
        return client.post(f"/cluster/v1/nodes/{env.node.id}/heartbeat", json={
            "overlay": {}, "host": {**HOST, "metrics": figures},
            "instances": {env.server["id"]: {"state": "running", "metrics": COUNTERS}}})


def test_a_nodes_own_host_figures_are_exposed(env: Env) -> None:
    resp = _host_beat(env, HOST_FIGURES)
    assert resp.status_code == 200, resp.text
    node = env.node.name
    text, found = scrape_until(env.cloud, lambda found: any(
        key[0] == "atwill_node_cpu_seconds_total" and ("node", node) in key[1]
        for key in found))
    for mode, seconds in HOST_FIGURES["cpu_seconds"].items():  # type: ignore[attr-defined]
        assert labelled(found, "atwill_node_cpu_seconds_total", node=node, mode=mode) \
            == seconds, mode
    for name, wanted in HOST_SERIES.items():
        assert labelled(found, name, node=node) == wanted, name
    # The figures do not take the place of the offered ones (the hypervisor's).
    assert labelled(found, "atwill_node_memory_bytes", node=node) == 8192 * MIB
    # OSC's hypervisor uptime still reads the same host report.
    hyp = env.cloud.openstack("--os-compute-api-version", "2.87", "hypervisor", "show",
                              node, "-f", "json")
    assert hyp["state"] == "up", hyp
    promtool = shutil.which("promtool")
    if promtool is not None:
        lint = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                              capture_output=True, timeout=60, check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    # A heartbeat without them (an older agent): the series go, nothing stale stays.
    env.report(metrics=COUNTERS)

    def series(found: dict[tuple[str, frozenset], float]) -> list:
        return [key for key in found if key[0].startswith(tuple(HOST_SERIES))
                and ("node", node) in key[1]]
    assert not series(scrape_until(env.cloud, lambda found: not series(found))[1])


def test_forged_host_figures_are_trimmed_never_refused(env: Env) -> None:
    forged = {**HOST_FIGURES, "load1": -2, "memory_total_bytes": 2 ** 70,
              "load5": "high", "fan_rpm": 3000,
              "cpu_seconds": {"user": 5.0, "idle": -1,
                              **{f"cpu{i}_{'x' * 20}": i for i in range(4000)}},
              **{f"extra{i}": i for i in range(2000)}}
    resp = _host_beat(env, forged)
    assert resp.status_code == 200, resp.text  # the heartbeat (liveness) goes through
    node = env.node.name

    def cpu_of(found: dict[tuple[str, frozenset], float]) -> dict[str, float]:
        return {dict(key[1])["mode"]: value for key, value in found.items()
                if key[0] == "atwill_node_cpu_seconds_total" and ("node", node) in key[1]}
    found = scrape_until(env.cloud, lambda found: cpu_of(found) == {"user": 5.0})[1]
    assert cpu_of(found) == {"user": 5.0}
    for name in ("atwill_node_load1", "atwill_node_load5", "atwill_node_memory_total_bytes"):
        assert (name, frozenset({("node", node)})) not in found, name
    assert labelled(found, "atwill_node_load15", node=node) == 0.125
    assert not [key for key in found if "fan" in key[0] or "extra" in key[0]]
    for figures in ("lots", [1, 2, 3], None, 7):
        assert _host_beat(env, figures).status_code == 200, figures
    # Past the heartbeat's bound: refused as too large, never a 500.
    resp = _host_beat(env, {"cpu_seconds": {f"m{i}": i for i in range(40000)}})
    assert resp.status_code == 413, resp.text
    assert _host_beat(env, HOST_FIGURES).status_code == 200
