"""The cluster API on loopback: tokens, joins and their refusals, mTLS, removal, rejoin.

These run without the lab (overlay "none"): the real join, agent and leave
commands against a real controller; the overlay itself is tested in the lab.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from atwill.agent.client import tls_context
from atwill.devcloud_forkserver import cli_forks
from tests.cloud import BIN, Cloud, unique


class Node:
    """A node state directory on this host, and the agent process started for it."""

    def __init__(self, cloud: Cloud, tmp: Path, name: str) -> None:
        self.cloud, self.name = cloud, name
        self.dir = tmp / name
        self.proc: subprocess.Popen | None = None

    def join(self, token: dict, check: bool = True, ca_hash: str | None = None):
        cmd = [str(BIN / "atwill"), "join", token["url"], "--token", token["token"],
               "--ca-hash", ca_hash or token["ca_hash"], "--name", self.name,
               "--state-dir", str(self.dir), "--skip-prereqs", "--foreground"]
        self.dir.mkdir(parents=True, exist_ok=True)
        if not check and os.environ.get("ATWILL_TEST_CLI_FORK", "1") == "1":
            # A join expected to be refused exits at once: run it as Cloud.atwill runs the
            # CLI, forked from a warm interpreter (devcloud_forkserver; a fresh process
            # spent ~1 s of CPU importing before its one request).
            done = cli_forks("atwill").run(cmd, dict(os.environ), timeout=60)
            output = done.stdout + done.stderr
            (self.dir / "join.log").write_text(output)
            return done.returncode, output
        log = open(self.dir / "join.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        if not check:
            self.proc.wait(60)
            return self.proc.returncode, (self.dir / "join.log").read_text()
        wait_for(lambda: (self.dir / "agent.yaml").exists() or self.proc.poll() is not None,
                 60, "join")
        assert self.proc.poll() is None, (self.dir / "join.log").read_text()
        return 0, ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)

    def http(self) -> httpx.Client:
        context = tls_context(self.dir / "pki" / "ca.pem", self.dir / "pki" / "node.pem",
                              self.dir / "pki" / "node-key.pem")
        return httpx.Client(base_url=self.cloud.url, verify=context, timeout=10)

    def node_id(self) -> str:
        import yaml

        return yaml.safe_load((self.dir / "agent.yaml").read_text())["node_id"]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def nodes(cloud: Cloud, tmp_path: Path) -> Iterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in made:
        node.stop()
        if (node.dir / "agent.yaml").exists():
            cloud.atwill("node", "remove", node.name, "--force", check=False)


def token(cloud: Cloud, *args: str) -> dict:
    return json.loads(cloud.atwill("token", "create", "--json", *args).stdout)


def node_list(cloud: Cloud) -> list[dict]:
    return json.loads(cloud.atwill("node", "list", "--json").stdout)


def test_token_lifecycle_via_cli_and_api(cloud: Cloud) -> None:
    made = token(cloud, "--ttl", "10m", "--uses", "3", "--description", "batch")
    assert made["command"] == (f"atwill join {cloud.url} --token {made['token']} "
                               f"--ca-hash {made['ca_hash']}")
    listed = json.loads(cloud.atwill("token", "list", "--json").stdout)
    mine = [t for t in listed if t["id"] == made["id"]][0]
    assert mine["state"] == "valid" and mine["max_uses"] == 3 and "token" not in mine
    with cloud.http(cloud.token()) as client:
        via_api = client.post("/cluster/v1/tokens", json={"ttl": 60, "uses": 1})
        assert via_api.status_code == 201 and via_api.json()["token"].startswith("atw_")
        assert client.delete(f"/cluster/v1/tokens/{via_api.json()['id']}").status_code == 204
        states = {t["id"]: t["state"] for t in client.get("/cluster/v1/tokens").json()}
        assert states[via_api.json()["id"]] == "revoked"
        assert client.post("/cluster/v1/tokens", json={"ttl": 0}).status_code == 400
        assert client.post("/cluster/v1/tokens", json={"uses": "x"}).status_code == 400
        spec = client.get("/cluster/v1/openapi.json").json()
        assert "/v1/join" in spec["paths"] or "/cluster/v1/join" in str(spec["paths"])


@pytest.mark.engine_free("policy: a member's 403, no token's 401 (identity on PostgreSQL: "
                         "test_identity_*)")
def test_cluster_admin_api_needs_admin(cloud: Cloud) -> None:
    project, user = unique("p"), unique("u")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-x12345", user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-x12345", project)
    with cloud.http(cloud.token(user)) as client:
        for method, path in (("GET", "/cluster/v1/nodes"), ("GET", "/cluster/v1/tokens"),
                             ("POST", "/cluster/v1/tokens")):
            resp = client.request(method, path, json={} if method == "POST" else None)
            assert resp.status_code == 403, resp.text
    with cloud.http() as client:
        assert client.get("/cluster/v1/nodes").status_code == 401


def test_join_refusals_each_say_why_and_change_nothing(cloud: Cloud, tmp_path: Path,
                                                       nodes: list[Node]) -> None:
    used = token(cloud, "--uses", "1")
    expired = token(cloud, "--ttl", "1s")  # made first: it expires while the join runs
    made = time.monotonic()
    first = Node(cloud, tmp_path, unique("n"))
    nodes.append(first)
    first.join(used)
    revoked = token(cloud)
    cloud.atwill("token", "delete", revoked["id"])
    time.sleep(max(0.0, made + 1.5 - time.monotonic()))
    before = {k: v for k, v in cloud.db_snapshot().items() if k != "nodes"}
    cases = [(used, None, "used up"), (expired, None, "expired"), (revoked, None, "revoked"),
             (token(cloud), "sha256:" + "0" * 64, "does not match the pinned hash")]
    for spec, pin, message in cases:
        other = Node(cloud, tmp_path, unique("n"))
        code, output = other.join(spec, check=False, ca_hash=pin)
        assert code == 1 and message in output, output
        assert not (other.dir / "pki").exists() and not (other.dir / "agent.yaml").exists()
    after = {k: v for k, v in cloud.db_snapshot().items() if k != "nodes"}
    # Only the unused token made for the wrong-CA case is new.
    assert len(after["join_tokens"]) == len(before["join_tokens"]) + 1
    assert after["overlay_addresses"] == before["overlay_addresses"]
    assert after["revoked_certificates"] == before["revoked_certificates"]


def test_join_shows_in_openstack_lists_then_remove_and_rejoin(cloud: Cloud, tmp_path: Path,
                                                              nodes: list[Node]) -> None:
    name = unique("node")
    node = Node(cloud, tmp_path, name)
    nodes.append(node)
    node.join(token(cloud))
    wait_for(lambda: any(n["name"] == name and n["state"] == "up" for n in node_list(cloud)),
             20, "node up")
    hypervisors = cloud.openstack("hypervisor", "list", "-f", "json")
    mine = [h for h in hypervisors if h["Hypervisor Hostname"] == name]
    assert mine and mine[0]["State"] == "up"
    services = cloud.openstack("compute", "service", "list", "-f", "json")
    assert any(s["Host"] == name and s["Binary"] == "nova-compute" and s["State"] == "up"
               for s in services)
    address = [n for n in node_list(cloud) if n["name"] == name][0]["overlay_ip"]
    node_id = node.node_id()
    with node.http() as client:
        assert client.post(f"/cluster/v1/nodes/{node_id}/heartbeat",
                           json={"overlay": {}}).status_code == 200
    cloud.atwill("node", "remove", name)
    # Told it was removed while it held no instances, the agent cleans up and exits.
    wait_for(lambda: node.proc.poll() is not None, 20, "agent to clean up and exit")
    assert not (node.dir / "removed.json").exists()
    assert not (node.dir / "pki").exists() and not (node.dir / "agent.yaml").exists()
    names = [h["Hypervisor Hostname"] for h in cloud.openstack("hypervisor", "list",
                                                                 "-f", "json")]
    assert name not in names
    assert name not in [n["name"] for n in node_list(cloud)]
    node.join(token(cloud))
    wait_for(lambda: any(n["name"] == name and n["state"] == "up" for n in node_list(cloud)),
             20, "node up again")
    again = [n for n in node_list(cloud) if n["name"] == name][0]
    assert again["overlay_ip"] == address and again["id"] != node_id




@pytest.mark.engine_free("a removed node's certificate refused; on PostgreSQL too in "
                         "test_certificate_renewal and test_down_node_with_vms_...")
def test_revoked_certificate_is_refused(cloud: Cloud, tmp_path: Path,
                                        nodes: list[Node]) -> None:
    node = Node(cloud, tmp_path, unique("node"))
    nodes.append(node)
    node.join(token(cloud))
    node.stop()  # keep its files: the agent would clean them up on removal
    node_id = node.node_id()
    cloud.atwill("node", "remove", node.name)
    with node.http() as client:
        resp = client.post(f"/cluster/v1/nodes/{node_id}/heartbeat", json={"overlay": {}})
        assert resp.status_code == 403 and resp.json()["error"]["type"] == "node_removed"
        resp = client.get(f"/cluster/v1/nodes/{node_id}/desired", params={"wait": 0})
        assert resp.status_code == 403 and resp.json()["error"]["type"] == "node_removed"
    with cloud.http() as client:  # no client certificate at all
        resp = client.post(f"/cluster/v1/nodes/{node_id}/heartbeat", json={"overlay": {}})
        assert resp.status_code == 401


@pytest.mark.engine_free("the agent's restart and `atwill leave`'s clean-up; the removal "
                         "it asks runs on PostgreSQL in test_join_shows_..._rejoin")
def test_agent_restart_and_leave(cloud: Cloud, tmp_path: Path, nodes: list[Node]) -> None:
    node = Node(cloud, tmp_path, unique("node"))
    nodes.append(node)
    node.join(token(cloud))
    node.stop()
    count = len(node_list(cloud))
    proc = subprocess.Popen([str(BIN / "atwill"), "agent", "--state-dir", str(node.dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    node.proc = proc
    wait_for(lambda: (node.dir / "agent.pid").exists(), 20, "agent pidfile")
    assert len(node_list(cloud)) == count
    out = subprocess.run([str(BIN / "atwill"), "leave", "--state-dir", str(node.dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    proc.wait(20)
    assert node.name not in [n["name"] for n in node_list(cloud)]
    assert sorted(p.name for p in node.dir.iterdir()) == ["join.log"]


def test_node_disable_enable_and_missed_heartbeats(cloud: Cloud, tmp_path: Path,
                                                   nodes: list[Node]) -> None:
    node = Node(cloud, tmp_path, unique("node"))
    nodes.append(node)
    node.join(token(cloud))
    cloud.atwill("node", "disable", node.name, "--reason", "maintenance")
    shown = json.loads(cloud.atwill("node", "show", node.name).stdout)
    assert not shown["enabled"] and shown["disabled_reason"] == "maintenance"
    services = cloud.openstack("compute", "service", "list", "-f", "json")
    assert [s["Status"] for s in services if s["Host"] == node.name] == ["disabled"]
    cloud.atwill("node", "enable", node.name)
    os.killpg(node.proc.pid, signal.SIGKILL)  # the agent dies without a word
    node.proc.wait()
    wait_for(lambda: [n["state"] for n in node_list(cloud) if n["name"] == node.name]
             == ["down"], 20, "node down after missed heartbeats")
    node.proc = subprocess.Popen([str(BIN / "atwill"), "agent", "--state-dir", str(node.dir)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
    wait_for(lambda: [n["state"] for n in node_list(cloud) if n["name"] == node.name]
             == ["up"], 20, "node up again")


def _down_with_a_vm(cloud: Cloud, node: Node) -> str:
    """Stop node's agent after it reported a running VM; wait until the node is down."""
    node_id = node.node_id()
    node.stop()
    with node.http() as client:
        assert client.post(f"/cluster/v1/nodes/{node_id}/heartbeat",
                           json={"overlay": {}, "running_vms": 1}).status_code == 200
    wait_for(lambda: [n["state"] for n in node_list(cloud) if n["name"] == node.name]
             == ["down"], 30, "node down after missed heartbeats")
    return node_id


def test_down_node_with_vms_is_not_replaced_without_the_operator(
        cloud: Cloud, tmp_path: Path, nodes: list[Node]) -> None:
    first = Node(cloud, tmp_path / "a", unique("node"))
    nodes.append(first)
    first.join(token(cloud))
    node_id = _down_with_a_vm(cloud, first)
    before = cloud.db_snapshot()
    second = Node(cloud, tmp_path / "b", first.name)
    code, output = second.join(token(cloud), check=False)
    assert code == 1 and f"Node {first.name} is down but still holds 1" in output, output
    assert f"atwill node remove {first.name} --force" in output
    after = cloud.db_snapshot()
    assert after["nodes"] == before["nodes"]
    assert after["revoked_certificates"] == before["revoked_certificates"]
    with first.http() as client:  # the cut-off node is still itself
        assert client.post(f"/cluster/v1/nodes/{node_id}/heartbeat",
                           json={"overlay": {}}).status_code == 200
    _down_with_a_vm(cloud, first)
    refused = cloud.atwill("node", "remove", first.name, check=False)
    assert refused.returncode != 0
    cloud.atwill("node", "remove", first.name, "--force")
    nodes.append(second)
    second.join(token(cloud))
    with first.http() as client:
        resp = client.post(f"/cluster/v1/nodes/{node_id}/heartbeat", json={"overlay": {}})
        assert resp.status_code == 403 and resp.json()["error"]["type"] == "node_removed"
        assert first.name in resp.json()["error"]["message"]


def _csr(node: Node, key_pem: bytes | None = None) -> str:
    from atwill import pki

    key = key_pem or (node.dir / "pki" / "node-key.pem").read_bytes()
    return pki.make_csr(key, node.name).decode()


def test_certificate_renewal(cloud: Cloud, tmp_path: Path, nodes: list[Node]) -> None:
    from atwill import pki

    node = Node(cloud, tmp_path, unique("node"))
    nodes.append(node)
    node.join(token(cloud))
    node.stop()
    node_id = node.node_id()
    start, end = pki.cert_lifetime((node.dir / "pki" / "node.pem").read_bytes())
    assert (end - start).days <= pki.NODE_CERT_DAYS
    old = tmp_path / "old.pem"
    old.write_bytes((node.dir / "pki" / "node.pem").read_bytes())
    with node.http() as client:
        other_key, _ = pki.make_key_and_csr(node.name)
        resp = client.post(f"/cluster/v1/nodes/{node_id}/certificate",
                           json={"csr": _csr(node, other_key)})
        assert resp.status_code == 400 and "keep the node's key" in resp.text
        resp = client.post(f"/cluster/v1/nodes/{node_id}/certificate", json={"csr": _csr(node)})
        assert resp.status_code == 200, resp.text
        (node.dir / "pki" / "node.pem").write_text(resp.json()["certificate"])
    with node.http() as client:
        assert client.post(f"/cluster/v1/nodes/{node_id}/heartbeat",
                           json={"overlay": {}}).status_code == 200
    context = tls_context(node.dir / "pki" / "ca.pem", old, node.dir / "pki" / "node-key.pem")
    with httpx.Client(base_url=cloud.url, verify=context, timeout=10) as client:
        resp = client.post(f"/cluster/v1/nodes/{node_id}/heartbeat", json={"overlay": {}})
        assert resp.status_code == 403
        assert resp.json()["error"]["type"] == "certificate_superseded"
        # The answer of a renewal may be lost: the superseded certificate renews again.
        resp = client.post(f"/cluster/v1/nodes/{node_id}/certificate", json={"csr": _csr(node)})
        assert resp.status_code == 200, resp.text
        # Only the certificate the latest renewal replaced renews: not this one again.
        resp = client.post(f"/cluster/v1/nodes/{node_id}/certificate", json={"csr": _csr(node)})
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"].get("type") != "certificate_superseded"
    cloud.atwill("node", "remove", node.name)
    with node.http() as client:
        resp = client.post(f"/cluster/v1/nodes/{node_id}/certificate", json={"csr": _csr(node)})
        assert resp.status_code == 403 and resp.json()["error"]["type"] == "node_removed"


def test_heartbeat_and_console_bounds(cloud: Cloud, tmp_path: Path, nodes: list[Node]) -> None:
    node = Node(cloud, tmp_path, unique("node"))
    nodes.append(node)
    node.join(token(cloud))
    node.stop()
    node_id = node.node_id()
    before = _heard(cloud, node_id)

    def chunked(size: int):
        yield b'{"overlay": {}, "host": {"pad": "'
        for _ in range(size // 4096):
            yield b"x" * 4096
        yield b'"}}'

    with node.http() as client:
        beat = f"/cluster/v1/nodes/{node_id}/heartbeat"
        resp = client.post(beat, content=chunked(300 * 1024))  # no Content-Length
        assert resp.status_code == 413 and "heartbeat" in resp.text, resp.text
        pci = [{"address": f"0000:00:{i:04x}.0"} for i in range(600)]
        resp = client.post(beat, json={"overlay": {}, "inventory": {"pci_devices": pci}})
        assert resp.status_code == 400 and "PCI devices" in resp.text
        resp = client.post(beat, json={"overlay": {}, "instances": {
            str(i): {"state": "running"} for i in range(5000)}})
        assert resp.status_code == 400 and "instances" in resp.text
        resp = client.post(beat, content=b"[" * 10000, headers={"content-type":
                                                                 "application/json"})
        assert resp.status_code == 400
        console = f"/cluster/v1/nodes/{node_id}/instances/{unique('i')}/console"
        assert client.put(console, json={"console": "x" * (65 * 1024)}).status_code == 413
        assert client.put(console, json={"console": "é" * 40_000}).status_code == 413
        assert client.put(console, json={"console": "hello"}).status_code == 404
    assert _heard(cloud, node_id) == before
    spec = token(cloud)
    from atwill import pki

    _key, csr = pki.make_key_and_csr("big")
    with cloud.http() as client:
        resp = client.post("/cluster/v1/join", json={
            "token": spec["token"], "name": unique("big"), "csr": csr.decode(),
            "inventory": {"pci_devices": [{}] * 600}})
        assert resp.status_code == 400 and "PCI devices" in resp.text
    assert [t["uses"] for t in json.loads(cloud.atwill("token", "list", "--json").stdout)
            if t["id"] == spec["id"]] == [0]


# What the HA monitor writes by itself while a stopped node falls silent.
MONITOR_COLUMNS = {"health", "health_changed_at", "state", "fence_state", "fence_message",
                   "fence_method", "fenced_at", "updated_at"}  # the monitor's writes move it


def _heard(cloud: Cloud, node_id: str) -> dict[str, object]:
    """The node's row as its requests could have changed it (not the monitor's columns)."""
    engine = create_engine(cloud.db_url())
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM nodes WHERE id = :i"),
                               {"i": node_id}).mappings().one()
    finally:
        engine.dispose()
    return {k: v for k, v in row.items() if k not in MONITOR_COLUMNS}
