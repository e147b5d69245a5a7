"""Live migration through the API and the real CLI, between two agent-less nodes.

Each node is a JoinedNode with a small fake agent that fetches its desired state and
answers as the real agent would: a destination reports its incoming QEMU's ports, a
source reports the migration's progress and end (completed, failed, or cancelled when
asked to abort), each as the test tells it (no QEMU here: the lab test migrates a VM).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.admin_api import network_id, show_server
from tests.api.aggregate_nodes import JoinedNode, wait_for
from tests.api.lockout_cloud import own_cloud
from tests.cloud import Cloud, CommandFailed, unique

V = "/compute/v2.1"
HOST = "OS-EXT-SRV-ATTR:host"


class MigratingAgent:
    """Beats every 0.2 s; the sources' migrations end as `ending[server]` says."""

    def __init__(self, node: JoinedNode, ending: dict[str, str]) -> None:
        self.node, self.ending = node, ending
        self.seen: list[dict[str, Any]] = []  # every desired state fetched
        self.stopping, self.paused = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(0.2):
            if self.paused.is_set():
                continue
            with self.node.http() as client:
                desired = client.get(f"/cluster/v1/nodes/{self.node.id}/desired").json()
            self.seen.append(desired)
            self.node.beat({i["id"]: self._entry(i) for i in desired.get("instances", [])})

    def _entry(self, inst: dict[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = {"state": "running", "reboot_serial": inst["reboot_serial"],
                                 "rebuild_serial": inst["rebuild_serial"]}
        if inst.get("power") == "stopped":
            entry["state"] = "shutoff"
        ending = self.ending.get(inst["id"], "completed")
        if "incoming" in inst:
            entry["state"] = "paused"
            mid = inst["incoming"]["migration"]
            entry["incoming"] = {"migration": mid, "error": "no room for the disk"} \
                if ending == "prepare-fails" else {"migration": mid, "nbd_port": 10809,
                                                    "port": 49152}
            if inst["incoming"].get("source_lost"):  # asked whether the guest arrived
                entry["incoming"] = {**entry["incoming"], "arrived": True} \
                    if ending == "arrives" else {"migration": mid, "error": "not arrived"}
        elif "migrate_to" in inst:
            order = inst["migrate_to"]
            status = {"completed": "completed", "failed": "failed"}.get(ending, "running")
            if order["abort"]:
                status = "cancelled"
            if order["force_complete"]:
                status = "completed"
            entry["migration"] = {"migration": order["migration"], "status": status,
                                  "memory_total": 64 << 20, "memory_processed": 32 << 20,
                                  "memory_remaining": 32 << 20, "disk_total": 1 << 30,
                                  "disk_processed": 1 << 30, "disk_remaining": 0}
            if status == "failed":
                entry["migration"]["error"] = "the destination went away"
        return entry

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


class Pair:
    def __init__(self, cloud: Cloud, a: JoinedNode, b: JoinedNode, image: str) -> None:
        self.cloud, self.a, self.b, self.image = cloud, a, b, image
        self.ending: dict[str, str] = {}
        self.agents = {a.name: MigratingAgent(a, self.ending),
                       b.name: MigratingAgent(b, self.ending)}

    def boot(self, host: str) -> str:
        net = network_id(self.cloud, "private")
        made = self.cloud.openstack(
            "server", "create", "--flavor", self.image + "-flavor", "--image", self.image,
            "--nic", f"net-id={net}", "--availability-zone", f"nova:{host}",
            unique("lmsrv"), "-f", "json")
        self.wait_server(made["id"], host)
        return made["id"]

    def show(self, server: str) -> dict[str, Any]:
        return self.cloud.openstack("server", "show", server, "-f", "json")

    def wait_server(self, server: str, host: str) -> dict[str, Any]:
        """Waited for over HTTP (admin_api: a look costs a GET); then the CLI's show."""
        wait_for(lambda: (s := show_server(self.cloud, server))["status"] == "ACTIVE"
                 and s[HOST] == host, 30, f"{server} ACTIVE on {host}")
        shown = self.show(server)
        assert shown["status"] == "ACTIVE" and shown[HOST] == host, shown
        return shown

    def migrations(self, server: str) -> list[dict[str, Any]]:
        return self.cloud.openstack("server", "migration", "list", "--server", server,
                                    "-f", "json")

    def desired_of(self, node: JoinedNode) -> dict[str, Any]:
        with node.http() as client:
            return client.get(f"/cluster/v1/nodes/{node.id}/desired").json()


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    """A controller of its own (live migration is on by default)."""
    yield from own_cloud(engine, ha_auto_evacuate=False)


@contextlib.contextmanager
def migrating_pair(cloud: Cloud, tmp: Path, prefix: str) -> Iterator[Pair]:
    """Two agent-less nodes with fake migrating agents, an image and its flavor; the
    servers named lmsrv* go with them."""
    a, b = JoinedNode(cloud, tmp, f"{prefix}-a"), JoinedNode(cloud, tmp, f"{prefix}-b")
    data = tmp / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", unique(f"{prefix}img"), "-f",
                            "json")["id"]
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1",
                    image + "-flavor")
    made = Pair(cloud, a, b, image)
    try:
        yield made
    finally:
        for server in cloud.openstack("server", "list", "--all-projects", "-f", "json"):
            if server["Name"].startswith("lmsrv"):
                cloud.openstack("server", "delete", "--wait", server["ID"])
        for agent in made.agents.values():
            agent.stop()
        a.remove()
        b.remove()
        cloud.openstack("image", "delete", image)
        cloud.openstack("flavor", "delete", image + "-flavor")


@pytest.fixture(scope="module")
def pair(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with migrating_pair(cloud, tmp_path_factory.mktemp("lm"), "lmnode") as made:
        yield made


def test_live_migration_with_the_cli(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    cloud.openstack("server", "migrate", "--live-migration", "--host", b.name, server)
    after = pair.wait_server(server, b.name)
    assert after["OS-EXT-SRV-ATTR:hypervisor_hostname"] == b.name
    (record,) = pair.migrations(server)
    assert (record["Status"], record["Source Compute"], record["Dest Compute"],
            record["Type"]) == ("completed", a.name, b.name, "live-migration")
    # What each agent was asked: the destination to receive, the source to send there.
    incoming = [i["incoming"] for d in pair.agents[b.name].seen
                for i in d["instances"] if i["id"] == server and "incoming" in i]
    assert incoming and incoming[0]["migration"] == record["Id"]
    orders = [i["migrate_to"] for d in pair.agents[a.name].seen
              for i in d["instances"] if i["id"] == server and "migrate_to" in i]
    b_overlay = pair.desired_of(b)["overlay"]["address"]
    # Both ends, and they alone, get the migration's own TLS key.
    key = orders[0].pop("tls") if orders else None
    assert key == incoming[0]["tls"] and len(key["key"]) == 64
    assert key["username"] == f"atwill-migration-{record['Id']}"
    assert orders and orders[0] == {
        "migration": record["Id"], "host": b_overlay, "nbd_port": 10809, "port": 49152,
        "downtime_ms": 300, "bandwidth": 0, "force_complete": False, "abort": False,
        "post_copy": False}  # setting live_migration_permit_post_copy (default off)
    assert incoming[0]["post_copy"] is False
    # The source's copy goes; the destination runs it as its own; its port moved along.
    assert server in pair.desired_of(a)["destroy"]
    theirs = pair.desired_of(b)
    assert [i for i in theirs["instances"] if i["id"] == server and "incoming" not in i]
    port = cloud.openstack("port", "list", "--server", server, "-f", "json")[0]
    assert cloud.openstack("port", "show", port["ID"], "-f", "json")[
        "binding_host_id"] == b.name
    # The key is forgotten once its migration ended (review finding).
    (row,) = [r for r in cloud.db_snapshot()["migrations"] if server in r]
    assert key["key"] not in row
    events = {e["event"] for e in _events(cloud, server, "live-migration")}
    assert {"conductor_live_migrate_instance", "compute_pre_live_migration",
            "compute_live_migration", "compute_post_live_migration_at_destination"} <= events


def _events(cloud: Cloud, server: str, action: str) -> list[dict[str, Any]]:
    with cloud.http(cloud.token()) as client:
        actions = client.get(f"{V}/servers/{server}/os-instance-actions",
                             headers=mv("2.51")).json()["instanceActions"]
        (req,) = [x["request_id"] for x in actions if x["action"] == action][:1]
        return client.get(f"{V}/servers/{server}/os-instance-actions/{req}",
                          headers=mv("2.51")).json()["instanceAction"]["events"]


def _usage(cloud: Cloud, node: str) -> int:
    """The node's vCPUs claimed (hypervisors show them until 2.88)."""
    with cloud.http(cloud.token()) as client:
        found = client.get(f"{V}/os-hypervisors/detail", headers=mv("2.87")).json()
    (vcpus,) = [h["vcpus_used"] for h in found["hypervisors"]
                if h["hypervisor_hostname"] == node]
    return vcpus


def test_abort_and_show_while_running(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    pair.ending[server] = "runs"
    used = _usage(cloud, b.name)
    # No host: the scheduler picks (the only other node).
    cloud.openstack("server", "migrate", "--live-migration", server)
    (record,) = wait_for(lambda: [m for m in pair.migrations(server)
                                  if m["Status"] == "running"], 20, "a running migration")
    assert pair.show(server)["status"] == "MIGRATING"
    assert _usage(cloud, b.name) == used + 1  # the destination is claimed meanwhile
    # (Not `openstack server migration show`: OSC 10.5 passes the SDK its server and
    # migration swapped, GET /servers/{migration}/migrations/{server}, on any cloud.)
    with cloud.http(cloud.token()) as client:
        shown = client.get(f"{V}/servers/{server}/migrations/{record['Id']}",
                           headers=mv("2.80")).json()["migration"]
    assert (shown["server_uuid"], shown["dest_compute"], shown["memory_total_bytes"]) == (
        server, b.name, 64 << 20)
    cloud.openstack("server", "migration", "abort", server, str(record["Id"]))
    wait_for(lambda: pair.migrations(server)[0]["Status"] == "cancelled", 20, "cancelled")
    after = pair.wait_server(server, a.name)
    assert after["status"] == "ACTIVE"
    assert _usage(cloud, b.name) == used
    assert server in pair.desired_of(b)["destroy"]  # whatever it prepared goes
    # Shown only while in progress (Nova's 404 afterwards).
    with cloud.http(cloud.token()) as client:
        resp = client.get(f"{V}/servers/{server}/migrations/{record['Id']}",
                          headers=mv("2.80"))
    assert resp.status_code == 404 and "is not found" in resp.text


def test_force_complete(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(b.name)
    pair.ending[server] = "runs"
    cloud.openstack("server", "migrate", "--live-migration", "--host", a.name, server)
    (record,) = wait_for(lambda: [m for m in pair.migrations(server)
                                  if m["Status"] == "running"], 20, "a running migration")
    cloud.openstack("server", "migration", "force", "complete", server, str(record["Id"]))
    pair.wait_server(server, a.name)
    assert pair.migrations(server)[0]["Status"] == "completed"


@pytest.mark.parametrize("ending", ["failed", "prepare-fails"])
def test_failure_keeps_the_server_on_its_source(pair: Pair, ending: str) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    pair.ending[server] = ending
    used = _usage(cloud, b.name)
    with cloud.http(cloud.token()) as client:
        resp = client.post(f"{V}/servers/{server}/action", headers=mv("2.30"),
                           json={"os-migrateLive": {"host": b.name, "block_migration": "auto"}})
    assert resp.status_code == 202, resp.text
    wait_for(lambda: pair.migrations(server)[0]["Status"] == "error", 20, "error")
    assert pair.wait_server(server, a.name)["status"] == "ACTIVE"
    assert _usage(cloud, b.name) == used
    assert server in pair.desired_of(b)["destroy"]
    assert server not in pair.desired_of(a)["destroy"]
    (event,) = [e for e in _events(cloud, server, "live-migration")
                if e["event"] == "compute_live_migration"]
    assert event["result"] == "Error"


@pytest.mark.parametrize("arrived", [True, False], ids=["arrived", "not-arrived"])
def test_a_source_known_off_mid_migration_is_settled_by_its_destination(
        pair: Pair, arrived: bool) -> None:
    """The source goes silent while it sends, and is then forced down (known off): it
    will report nothing more, so the destination is asked. A guest it runs has arrived
    (the migration completes, the server is there); otherwise the migration ends in error
    and the server is left on its source, no longer migrating, for HA to rebuild."""
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    pair.ending[server] = "arrives" if arrived else "runs"
    cloud.openstack("server", "migrate", "--live-migration", "--host", b.name, server)
    (record,) = wait_for(lambda: [m for m in pair.migrations(server)
                                  if m["Status"] == "running"], 20, "a running migration")
    pair.agents[a.name].paused.set()  # the source's power is cut: it says no more
    try:
        wait_for(lambda: cloud.openstack("compute", "service", "list", "--host", a.name,
                                         "-f", "json")[0]["State"] == "down", 30,
                 f"{a.name} down")
        # Only silent, it may still run the guest: nothing is settled yet.
        assert pair.migrations(server)[0]["Status"] == "running"
        cloud.openstack("compute", "service", "set", "--down", a.name, "nova-compute")
        ended = wait_for(lambda: (m := pair.migrations(server)[0])["Status"] in (
            "completed", "error") and m, 30, "the migration settled")
        shown = pair.show(server)
        assert ended["Id"] == record["Id"]
        assert (ended["Status"], shown[HOST], shown["OS-EXT-STS:task_state"]) == (
            ("completed", b.name, None) if arrived else ("error", a.name, None)), shown
        asked = [i["incoming"] for d in pair.agents[b.name].seen for i in d["instances"]
                 if i["id"] == server and "incoming" in i]
        assert asked[-1].get("source_lost") is True
        if arrived:
            assert server not in pair.desired_of(b)["destroy"]
        else:
            assert server in pair.desired_of(b)["destroy"]
    finally:
        cloud.openstack("compute", "service", "set", "--up", a.name, "nova-compute")
        pair.agents[a.name].paused.clear()
        wait_for(lambda: cloud.openstack("compute", "service", "list", "--host", a.name,
                                         "-f", "json")[0]["State"] == "up", 30,
                 f"{a.name} up again")
        cloud.openstack("server", "delete", "--wait", server)  # the module's quota is 10


BAD = [  # (version, body, status, words in the message)
    ("2.25", {"host": None}, 400, "'block_migration' is a required property"),
    ("2.25", {"host": None, "block_migration": "auto", "force": True}, 400, "'force'"),
    ("2.1", {"host": None, "block_migration": "auto", "disk_over_commit": False}, 400,
     "block_migration"),
    ("2.1", {"block_migration": True, "disk_over_commit": False}, 400, "'host'"),
    ("2.30", {"host": None, "block_migration": "auto", "force": True}, 400,
     "non-provided destination"),
    ("2.30", {"host": "no-such-node", "block_migration": "auto"}, 400, "could not be found"),
    ("2.30", {"host": "SELF", "block_migration": "auto"}, 400, "to current host"),
    ("2.30", {"host": None, "block_migration": False}, 400, "shared storage"),
    ("2.30", {"host": None, "block_migration": "yes"}, 400, "block_migration"),
    ("2.30", ["not", "an", "object"], 400, "os-migrateLive"),
]


def test_bad_requests_change_nothing(pair: Pair) -> None:
    cloud, a = pair.cloud, pair.a
    server = pair.boot(a.name)
    stopped = pair.boot(a.name)
    cloud.openstack("server", "stop", stopped)
    wait_for(lambda: pair.show(stopped)["status"] == "SHUTOFF", 20, "SHUTOFF")
    for agent in pair.agents.values():
        agent.paused.set()
    try:
        tables = ("migrations", "instance_actions", "instance_action_events")
        before = {k: v for k, v in cloud.db_snapshot().items() if k in tables}
        failures = []
        with cloud.http(cloud.token()) as client:
            for version, body, status, words in BAD:
                if isinstance(body, dict) and body.get("host") == "SELF":
                    body = {**body, "host": a.name}
                resp = client.post(f"{V}/servers/{server}/action", headers=mv(version),
                                   json={"os-migrateLive": body})
                if resp.status_code != status or words not in resp.text:
                    failures.append((version, body, resp.status_code, resp.text[:300]))
            resp = client.post(f"{V}/servers/{stopped}/action", headers=mv("2.30"),
                               json={"os-migrateLive": {"host": None,
                                                        "block_migration": "auto"}})
            if resp.status_code != 409 or "vm_state stopped" not in resp.text:
                failures.append(("stopped", resp.status_code, resp.text[:300]))
            # Server migrations: not before their microversions; unknown ids are 404.
            for method, path, version, status in [
                    ("GET", "migrations", "2.22", 404), ("GET", "migrations/99999", "2.23", 404),
                    ("DELETE", "migrations/99999", "2.23", 404),
                    ("DELETE", "migrations/99999", "2.24", 404),
                    ("DELETE", "migrations/abc", "2.24", 404)]:
                resp = client.request(method, f"{V}/servers/{server}/{path}",
                                      headers=mv(version))
                if resp.status_code != status:
                    failures.append((method, path, version, resp.status_code, resp.text))
            resp = client.post(f"{V}/servers/{server}/migrations/1/action", headers=mv("2.22"),
                               json={"force_complete": {}})
            if resp.status_code != 400:
                failures.append(("force_complete body", resp.status_code, resp.text))
        after = {k: v for k, v in cloud.db_snapshot().items() if k in tables}
    finally:
        for agent in pair.agents.values():
            agent.paused.clear()
    assert not failures, "\n".join(map(str, failures))
    assert after == before


def test_members_may_not_migrate(pair: Pair) -> None:
    cloud = pair.cloud
    server = pair.boot(pair.a.name)
    with cloud.http(cloud.token()) as client:
        project = client.get(f"{V}/servers/{server}").json()["server"]["tenant_id"]
    name = unique("lmuser")
    cloud.openstack("user", "create", "--password", "pw-" + name, name)
    cloud.openstack("role", "add", "--user", name, "--project", project, "member")
    cloud.add_user(name, "pw-" + name, "admin")
    try:
        with cloud.http(cloud.token(name)) as client:
            resp = client.post(f"{V}/servers/{server}/action", headers=mv("2.30"),
                               json={"os-migrateLive": {"host": None,
                                                        "block_migration": "auto"}})
            assert resp.status_code == 403, resp.text
            assert client.get(f"{V}/os-migrations").status_code == 403
    finally:
        cloud.users.pop(name)
        cloud.openstack("user", "delete", name)


def test_os_migrations_shapes_per_microversion(pair: Pair) -> None:
    cloud = pair.cloud
    server = pair.boot(pair.a.name)
    pair.ending[server] = "runs"
    cloud.openstack("server", "migrate", "--live-migration", "--host", pair.b.name, server)
    wait_for(lambda: [m for m in pair.migrations(server) if m["Status"] == "running"], 20,
             "a running migration")
    base = {"id", "status", "instance_uuid", "source_node", "source_compute", "dest_node",
            "dest_compute", "dest_host", "old_instance_type_id", "new_instance_type_id",
            "created_at", "updated_at"}
    with cloud.http(cloud.token()) as client:
        def listed(version: str, query: str = "") -> dict[str, Any]:
            resp = client.get(f"{V}/os-migrations?instance_uuid={server}{query}",
                              headers=mv(version))
            assert resp.status_code == 200, resp.text
            return resp.json()

        (old,) = listed("2.1")["migrations"]
        assert set(old) == base
        (m23,) = listed("2.23")["migrations"]
        assert set(m23) == base | {"migration_type", "links"}
        assert m23["links"][0]["href"].endswith(f"/servers/{server}/migrations/{m23['id']}")
        (m80,) = listed("2.80")["migrations"]
        assert set(m80) == base | {"migration_type", "links", "uuid", "user_id",
                                   "project_id"}
        assert listed("2.80", "&user_id=nobody")["migrations"] == []
        assert listed("2.1", "&user_id=nobody")["migrations"] != []  # unknown before 2.80
        (live,) = client.get(f"{V}/servers/{server}/migrations",
                             headers=mv("2.59")).json()["migrations"]
        assert set(live) == {
            "id", "server_uuid", "status", "source_compute", "source_node", "dest_compute",
            "dest_node", "dest_host", "memory_total_bytes", "memory_processed_bytes",
            "memory_remaining_bytes", "disk_total_bytes", "disk_processed_bytes",
            "disk_remaining_bytes", "created_at", "updated_at", "uuid"}
        resp = client.delete(f"{V}/servers/{server}/migrations/{live['id']}",
                             headers=mv("2.24"))
        assert resp.status_code == 202, resp.text
    wait_for(lambda: pair.migrations(server)[0]["Status"] == "cancelled", 20, "cancelled")
    with cloud.http(cloud.token()) as client:
        everything = client.get(f"{V}/os-migrations", headers=mv("2.59")).json()
        assert len(everything["migrations"]) >= 2
        first = client.get(f"{V}/os-migrations?limit=1", headers=mv("2.59")).json()
        assert len(first["migrations"]) == 1 and "migrations_links" in first
        assert first["migrations"][0]["uuid"] == everything["migrations"][0]["uuid"]
        resp = client.get(f"{V}/os-migrations?marker=nope", headers=mv("2.59"))
        assert resp.status_code == 400
    assert json.dumps(everything)  # serializable as the CLI reads it
    with pytest.raises(CommandFailed):
        cloud.openstack("server", "migration", "abort", server, "99999")
