"""/metrics on the controller: who may scrape, what it holds, and a real Prometheus reading it.

The real Prometheus (Debian's `prometheus`) is used when installed; without it the
test parses the exposition with prometheus_client's own parser only.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete

from atwill.controller.db.servers import Instance
from atwill.controller.db.session import Database
from atwill.controller.db.usage_events import UsageEvent
from tests.api.aggregate_nodes import JoinedNode
from tests.cloud import Cloud, unique

# The instance the module's node holds, by node name.
INSTANCES: dict[str, str] = {}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="module")
def node(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JoinedNode]:
    """A joined node holding one instance that finished building 43 s after its create."""
    made = JoinedNode(cloud, tmp_path_factory.mktemp("metrics"), "metricsnode")
    made.beat()
    db = Database(cloud.db_url())
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    inst = Instance(name=unique("metricsvm"), project_id="p", user_id="u", vcpus=1,
                    memory_mb=64, disk_gb=1, node_id=made.id, node_name=made.name,
                    vm_state="active", created_at=now - dt.timedelta(seconds=42),
                    launched_at=now + dt.timedelta(seconds=1))
    with db.session() as session:
        session.add(inst)
        session.flush()
        ident = inst.id
    INSTANCES[made.name] = ident
    try:
        yield made
    finally:
        with db.session() as session:
            session.execute(delete(UsageEvent).where(UsageEvent.instance_id == ident))
            session.execute(delete(Instance).where(Instance.id == ident))
        db.dispose()
        made.remove()


def test_only_admins_and_the_scrapers_credential(cloud: Cloud) -> None:
    project, user = unique("metproj"), unique("metuser")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    secret = cloud.state_dir / "metrics-token"
    try:
        with cloud.http() as client:
            assert client.get("/metrics").status_code == 401
            assert client.get("/metrics", headers={"Authorization": "Bearer x"}
                              ).status_code == 401
            secret.write_text("s3cret-scraper\n")
            assert client.get("/metrics", headers={"Authorization": "Bearer nope"}
                              ).status_code == 401
            ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scraper"})
            assert ok.status_code == 200 and "atwill_nodes" in ok.text
        with cloud.http(cloud.token(user)) as client:
            refused = client.get("/metrics")
            assert refused.status_code == 403 and "metrics" in refused.json()["error"]["message"]
    finally:
        secret.unlink(missing_ok=True)
        cloud.openstack("user", "delete", user)
        cloud.openstack("project", "delete", project)


def test_exposition_holds_traffic_nodes_instances_and_builds(cloud: Cloud,
                                                             node: JoinedNode) -> None:
    # The instance's launch (a second ahead of the fixture's clock, truncated to the
    # second: after anything the controller watched before) must be past by the scrape,
    # or the controller's build watermark would skip other builds until it is.
    time.sleep(2)
    node.beat()  # a node is down within seconds without heartbeats
    with cloud.http(cloud.token()) as client:
        assert client.get("/compute/v2.1/os-aggregates/424242").status_code == 404
        resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    found = samples(resp.text)
    assert found[("atwill_nodes", frozenset({("state", "up")}))] >= 1
    age = found[("atwill_node_heartbeat_age_seconds", frozenset({("node", node.name)}))]
    assert 0 <= age < 120
    assert found[("atwill_instances", frozenset({("state", "active"),
                                                 ("node", node.name)}))] == 1
    route = ("route", "/compute/v2.1/os-aggregates/{aggregate_id}")
    assert found[("atwill_api_requests_total", frozenset({
        ("service", "compute"), route, ("method", "GET"), ("code", "404")}))] >= 1
    assert found[("atwill_api_request_duration_seconds_count",
                  frozenset({("service", "compute"), route}))] >= 1
    assert found[("atwill_instance_build_duration_seconds_count", frozenset())] >= 1
    assert found[("atwill_instance_build_duration_seconds_bucket",
                  frozenset({("le", "30.0")}))] < found[
        ("atwill_instance_build_duration_seconds_bucket", frozenset({("le", "60.0")}))]


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed")
def test_a_real_prometheus_scrapes_it(cloud: Cloud, node: JoinedNode, tmp_path: Path) -> None:
    secret = cloud.state_dir / "metrics-token"
    secret.write_text("prometheus-scraper")
    (tmp_path / "cred").write_text("prometheus-scraper")
    target = cloud.url.split("://", 1)[1]
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: atwill\n"
        f"    scheme: {cloud.url.split('://', 1)[0]}\n"
        f"    tls_config: {{ca_file: {cloud.cacert}}}\n"
        f"    authorization: {{credentials_file: {tmp_path / 'cred'}}}\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ident = INSTANCES[node.name]
        node.beat({ident: {"state": "running", "metrics": {"cpu_seconds": 7.5}}})
        query = f'atwill_node_heartbeat_age_seconds{{node="{node.name}"}}'
        assert _query(port, query) < 120
        assert _query(port, 'sum(atwill_api_requests_total{service="metrics"})') >= 1
        assert _query(port, f'atwill_node_vcpus{{node="{node.name}"}}') == 8
        # A node's own reading of its instance, relayed from its heartbeat.
        assert _query(port, f'atwill_instance_cpu_seconds_total{{instance_id="{ident}"}}'
                      ) == 7.5
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        secret.unlink(missing_ok=True)


# Prometheus' naming rules (prometheus.io/docs/practices/naming): snake case under the
# application's prefix, base units (seconds, bytes) spelled out as the last word before
# _total / _bucket…, never milliseconds or kilobytes; counters end in _total.
NAME = re.compile(r"^atwill_[a-z][a-z0-9_]*[a-z0-9]$")
NOT_BASE_UNITS = re.compile(r"_(ms|us|ns|millis|milliseconds|microseconds|minutes|hours|"
                            r"kb|mb|gb|kib|mib|gib|kilobytes|megabytes|percent|secs?)"
                            r"(_|$)")


def test_names_follow_prometheus_conventions(cloud: Cloud, node: JoinedNode) -> None:
    """Every family, with every kind of series present (a node's relayed instance
    counters and reconcile passes), passes promtool's lint and the naming rules."""
    ident = INSTANCES[node.name]
    node.beat({ident: {"state": "running", "metrics": {
        "cpu_seconds": 3.0, "memory_rss_bytes": 2 ** 20, "disk_read_bytes": 1,
        "disk_write_bytes": 2, "net_rx_bytes": 3, "net_tx_bytes": 4}}})
    with node.http() as client:
        client.post(f"/cluster/v1/nodes/{node.id}/heartbeat", json={
            "overlay": {}, "instances": {ident: {"state": "running", "metrics": {
                "cpu_seconds": 3.0}}},
            "host": {"reconcile": {"buckets": [1] * 12, "sum": 0.1, "count": 1,
                                   "failures": 0}}})
    with cloud.http(cloud.token()) as client:
        text = client.get("/metrics").text
    families = list(text_string_to_metric_families(text))
    names = {f.name: f.type for f in families}
    for wanted in ("atwill_api_requests", "atwill_api_request_duration_seconds",
                   "atwill_instance_cpu_seconds", "atwill_node_reconcile_duration_seconds",
                   "atwill_scheduler_placements", "atwill_token_cache_lookups"):
        assert wanted in names, sorted(names)
    atwill = {n: t for n, t in names.items() if n.startswith("atwill_")}
    bad = [n for n in atwill if not NAME.match(n) or NOT_BASE_UNITS.search(n)]
    assert not bad, bad
    # The parser drops a counter's _total from its family name; its samples keep it.
    counted = {s.name for f in families if f.type == "counter" and f.name in atwill
               for s in f.samples}
    assert counted and all(n.endswith(("_total", "_created")) for n in counted), counted
    assert all(n.endswith("_seconds") for n, t in atwill.items() if t == "histogram")
    assert all(f"# HELP {n}" in text for n in atwill), "a family without HELP"
    promtool = shutil.which("promtool")
    if promtool is None:
        return
    lint = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                          capture_output=True, timeout=60, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def _query(port: int, expr: str) -> float:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            body = httpx.get(f"http://127.0.0.1:{port}/api/v1/query",
                             params={"query": expr}, timeout=5).json()
            if body["data"]["result"]:
                return float(body["data"]["result"][0]["value"][1])
        except (httpx.HTTPError, ValueError):
            pass  # not listening yet, or 503 "Service Unavailable" while it starts
        time.sleep(0.2)  # its first scrape comes within its 1 s interval
    raise AssertionError(f"Prometheus never had {expr}")


def test_reconcile_passes_and_token_cache_lookups(cloud: Cloud, node: JoinedNode) -> None:
    """A node's reconcile figures come from its heartbeat's host report; the token cache's
    lookups are counted as the API validates the same token again."""
    report = {"buckets": [3, 5, 6, 6, 7, 7, 8, 8, 8, 8, 8, 9], "sum": 41.5, "count": 10,
              "failures": 2}
    with node.http() as client:
        resp = client.post(f"/cluster/v1/nodes/{node.id}/heartbeat", json={
            "overlay": {}, "host": {"uptime_s": 60, "reconcile": report}})
    assert resp.status_code == 200, resp.text
    name, at = "atwill_node_reconcile_duration_seconds", ("node", node.name)
    with cloud.http(cloud.token()) as client:
        before = _written(client, lambda found: (f"{name}_count", frozenset({at})) in found)
        for _ in range(3):
            assert client.get("/compute/v2.1/os-aggregates").status_code == 200
        found = samples(client.get("/metrics").text)
    assert found[(f"{name}_bucket", frozenset({at, ("le", "0.05")}))] == 5
    assert found[(f"{name}_bucket", frozenset({at, ("le", "+Inf")}))] == 10
    assert found[(f"{name}_count", frozenset({at}))] == 10
    assert found[(f"{name}_sum", frozenset({at}))] == 41.5
    assert found[("atwill_node_reconcile_failures_total", frozenset({at}))] == 2
    hits = ("atwill_token_cache_lookups_total", frozenset({("result", "hit")}))
    assert found[hits] >= before.get(hits, 0) + 3
    assert found[("atwill_token_cache_entries", frozenset())] >= 1
    # Nonsense in a report (not cumulative) drops that node's series, never the scrape.
    with node.http() as client:
        # A beat may meet the node's row locked by the HA monitor judging it down (it beats
        # only when this test posts): 503 heartbeat_row_busy, nothing applied; an agent
        # sends it again, so does this.
        for _ in range(20):
            resp = client.post(f"/cluster/v1/nodes/{node.id}/heartbeat", json={
                "overlay": {}, "host": {"reconcile": {**report, "buckets": [9] + [1] * 11}}})
            if resp.status_code != 503:
                break
            time.sleep(0.1)
        assert resp.status_code == 200, resp.text
    with cloud.http(cloud.token()) as client:
        found = _written(client, lambda found: (f"{name}_count", frozenset({at})) not in found)
    assert (f"{name}_count", frozenset({at})) not in found


def _written(client: httpx.Client, ok: Callable[[dict], bool]) -> dict:
    """/metrics once `ok` holds (or after 5 s, for the assertions to show): a node's host
    report reaches the database with its beat's batch, within the lean heartbeat path's
    staleness bound (cluster/liveness.py), not at the beat's reply."""
    deadline = time.monotonic() + 5
    while True:
        resp = client.get("/metrics")
        assert resp.status_code == 200, resp.text
        found = samples(resp.text)
        if ok(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
