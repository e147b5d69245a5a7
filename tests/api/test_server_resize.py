"""Cold migration and resize through the API and the real CLI, between two agent-less
nodes whose small fake agents do what the real one does with its cold_migrations block:
the source uploads the instance's disk (made-up bytes here), the destination fetches it
and says it was received; each reports its instances running, or shut off when stopped.
(The lab test in tests/integration/test_server_shelve.py moves a real VM's disk.)
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.api.admin_api import network_id, show_server
from tests.api.aggregate_nodes import JoinedNode, wait_for
from tests.api.lockout_cloud import own_cloud
from tests.cloud import Cloud, CommandFailed, unique

V = "/compute/v2.1"
HOST = "OS-EXT-SRV-ATTR:host"


class ResizingAgent:
    """Beats every 0.2 s; sends and receives the disks its desired state names."""

    def __init__(self, node: JoinedNode) -> None:
        self.node = node
        self.sent: dict[str, bytes] = {}  # migration -> the bytes uploaded
        self.got: dict[str, bytes] = {}  # migration -> the bytes fetched
        self.errors: list[str] = []
        self.fail: set[str] = set()  # instances whose disk this node fails to receive
        # migration -> (instance, whether withheld) for each same-node revert put back
        self.reverted: dict[str, tuple[str, bool]] = {}
        self.confirmed: dict[str, str] = {}  # migration -> instance, same-node confirms
        self.paused, self.stopping = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(0.2):
            if self.paused.is_set():
                continue
            try:
                self._step()
            except Exception as err:  # noqa: BLE001 - shown by Pair.wait when it times out
                self.errors.append(repr(err))

    def _step(self) -> None:
        base = f"/cluster/v1/nodes/{self.node.id}"
        with self.node.http() as client:
            desired = client.get(f"{base}/desired").json()
            block = desired.get("cold_migrations") or {}
            for item in block.get("send", []):
                if item["migration"] not in self.sent:
                    data = os.urandom(4096)
                    resp = client.put(f"{base}/cold-migrations/{item['migration']}/file",
                                      content=data,
                                      headers={"Content-Type": "application/octet-stream"})
                    assert resp.status_code == 204, resp.text
                    self.sent[item["migration"]] = data
            for item in block.get("receive", []):
                if item["migration"] in self.got:
                    continue
                path = f"{base}/cold-migrations/{item['migration']}"
                if item["instance"] in self.fail:
                    resp = client.post(f"{path}/error", json={"message": "no room"})
                    assert resp.status_code == 204, resp.text
                    self.got[item["migration"]] = b""
                    continue
                data = b"" if item["local"] else client.get(f"{path}/file").content
                resp = client.post(f"{path}/received")
                assert resp.status_code == 204, resp.text
                self.got[item["migration"]] = data
            wanted = {i["id"] for i in desired.get("instances", [])}
            for item in block.get("revert_local", []):  # the kept disk put back
                if item["migration"] not in self.reverted:
                    resp = client.post(f"{base}/cold-migrations/{item['migration']}/reverted")
                    assert resp.status_code == 204, resp.text
                    self.reverted[item["migration"]] = (item["instance"],
                                                        item["instance"] not in wanted)
            for item in block.get("confirm_local", []):  # the kept disk deleted
                self.confirmed[item["migration"]] = item["instance"]
        self.node.beat({i["id"]: _reported(i) for i in desired.get("instances", [])})

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)


def _reported(spec: dict[str, Any]) -> dict[str, Any]:
    """An instance as its agent reports it: running (or shut off when stopped), with the
    volumes it was given plugged in (test_volume_move_keys.py)."""
    entry = {"state": "shutoff" if spec["power"] == "stopped" else "running",
             "reboot_serial": spec["reboot_serial"], "rebuild_serial": spec["rebuild_serial"]}
    if "volumes" in spec:
        entry["volumes"] = dict.fromkeys((v["volume_id"] for v in spec["volumes"]), "attached")
    return entry


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


class Pair:
    def __init__(self, cloud: Cloud, a: JoinedNode, b: JoinedNode, image: str) -> None:
        self.cloud, self.a, self.b, self.image = cloud, a, b, image
        self.agents = {a.name: ResizingAgent(a), b.name: ResizingAgent(b)}

    def boot(self, host: str, flavor: str = "small") -> str:
        net = network_id(self.cloud, "private")
        made = self.cloud.openstack(
            "server", "create", "--flavor", f"{self.image}-{flavor}", "--image", self.image,
            "--nic", f"net-id={net}", "--availability-zone", f"nova:{host}",
            unique("rzsrv"), "-f", "json")
        self.wait(made["id"], "ACTIVE", host)
        return made["id"]

    def show(self, server: str) -> dict[str, Any]:
        return self.cloud.openstack("server", "show", server, "-f", "json")

    def wait(self, server: str, status: str, host: str) -> dict[str, Any]:
        """Waited for over HTTP (admin_api: a look costs a GET); then the CLI's show."""
        seen: dict[str, Any] = {}

        def check() -> Any:
            seen.update(show_server(self.cloud, server))
            return seen["status"] == status and seen[HOST] == host
        try:
            wait_for(check, 30, f"{server} {status} on {host}")
            shown = self.show(server)
            assert shown["status"] == status and shown[HOST] == host, shown
            return shown
        except AssertionError:
            errors = [e for agent in self.agents.values() for e in agent.errors]
            raise AssertionError(f"{seen.get('status')} {seen.get('OS-EXT-STS:task_state')} "
                                 f"on {seen.get(HOST)}; agents: {errors[-3:]}") from None

    def migration(self, server: str) -> dict[str, Any]:
        return self.cloud.openstack("server", "migration", "list", "--server", server,
                                    "-f", "json")[0]

    def destroyed(self, node: JoinedNode) -> list[str]:
        with node.http() as client:
            return client.get(f"/cluster/v1/nodes/{node.id}/desired").json()["destroy"]


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    yield from own_cloud(engine, ha_auto_evacuate=False, resize_confirm_window=60,
                         allow_resize_to_same_host=True)


@pytest.fixture(scope="module")
def pair(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("rz")
    a, b = JoinedNode(cloud, tmp, "rznode-a"), JoinedNode(cloud, tmp, "rznode-b")
    data = tmp / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", unique("rzimg"), "-f", "json")["id"]
    flavors = {"small": ("1", "64", "1"), "big": ("2", "128", "2"),
               "huge": ("2", "40000", "2")}
    for name, (vcpus, ram, disk) in flavors.items():
        cloud.openstack("flavor", "create", "--vcpus", vcpus, "--ram", ram, "--disk", disk,
                        f"{image}-{name}")
    cloud.openstack("flavor", "create", "--vcpus", "2", "--ram", "128", "--disk", "2",
                    "--private", f"{image}-private")
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
        for name in (*flavors, "private"):
            cloud.openstack("flavor", "delete", f"{image}-{name}")


def _events(cloud: Cloud, server: str, action: str) -> set[str]:
    with cloud.http(cloud.token()) as client:
        actions = client.get(f"{V}/servers/{server}/os-instance-actions",
                             headers=mv("2.51")).json()["instanceActions"]
        req = [x["request_id"] for x in actions if x["action"] == action][0]
        return {e["event"] for e in client.get(
            f"{V}/servers/{server}/os-instance-actions/{req}",
            headers=mv("2.51")).json()["instanceAction"]["events"]}


def _vcpus_used(cloud: Cloud, node: str) -> int:
    with cloud.http(cloud.token()) as client:
        found = client.get(f"{V}/os-hypervisors/detail", headers=mv("2.87")).json()
    (vcpus,) = [h["vcpus_used"] for h in found["hypervisors"]
                if h["hypervisor_hostname"] == node]
    return vcpus


def test_resize_up_and_confirm_with_the_cli(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    cloud.openstack("server", "resize", "--flavor", f"{pair.image}-big", server)
    shown = pair.wait(server, "VERIFY_RESIZE", b.name)
    assert f"{pair.image}-big" in str(shown["flavor"])
    record = pair.migration(server)
    assert (record["Status"], record["Source Compute"], record["Dest Compute"],
            record["Type"]) == ("finished", a.name, b.name, "resize")
    # The destination fetched exactly what the source sent, through the controller.
    ((mid, data),) = pair.agents[a.name].sent.items()
    assert pair.agents[b.name].got[mid] == data
    assert server not in pair.destroyed(a)  # the source keeps its copy until confirm
    port = cloud.openstack("port", "list", "--server", server, "-f", "json")[0]
    assert cloud.openstack("port", "show", port["ID"], "-f", "json")[
        "binding_host_id"] == b.name
    assert (_vcpus_used(cloud, a.name), _vcpus_used(cloud, b.name)) == (1, 2)

    cloud.openstack("server", "resize", "confirm", server)
    pair.wait(server, "ACTIVE", b.name)
    assert pair.migration(server)["Status"] == "confirmed"
    assert server in pair.destroyed(a)
    assert (_vcpus_used(cloud, a.name), _vcpus_used(cloud, b.name)) == (0, 2)
    assert {"conductor_migrate_server", "compute_prep_resize", "compute_resize_instance",
            "compute_finish_resize"} <= _events(cloud, server, "resize")
    assert "compute_confirm_resize" in _events(cloud, server, "confirmResize")
    cloud.openstack("server", "delete", "--wait", server)


def test_resize_and_revert(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    cloud.openstack("server", "resize", "--flavor", f"{pair.image}-big", server)
    pair.wait(server, "VERIFY_RESIZE", b.name)
    cloud.openstack("server", "resize", "revert", server)
    shown = pair.wait(server, "ACTIVE", a.name)
    assert f"{pair.image}-small" in str(shown["flavor"])
    assert pair.migration(server)["Status"] == "reverted"
    assert server in pair.destroyed(b) and server not in pair.destroyed(a)
    assert (_vcpus_used(cloud, a.name), _vcpus_used(cloud, b.name)) == (1, 0)
    assert "compute_finish_revert_resize" in _events(cloud, server, "revertResize")
    cloud.openstack("server", "delete", "--wait", server)


def test_cold_migrate_a_stopped_server(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    cloud.openstack("server", "stop", server)
    pair.wait(server, "SHUTOFF", a.name)
    cloud.openstack("server", "migrate", server)
    pair.wait(server, "VERIFY_RESIZE", b.name)
    assert pair.migration(server)["Type"] == "migration"
    cloud.openstack("server", "resize", "confirm", server)
    pair.wait(server, "SHUTOFF", b.name)  # confirmed as it was: stopped
    cloud.openstack("server", "delete", "--wait", server)


def test_auto_confirm_after_the_window(pair: Pair) -> None:
    cloud, b = pair.cloud, pair.b
    server = pair.boot(pair.a.name)
    cloud.openstack("server", "resize", "--flavor", f"{pair.image}-big", server)
    pair.wait(server, "VERIFY_RESIZE", b.name)
    engine = create_engine(cloud.db_url())
    try:
        with engine.begin() as conn:  # finished long ago: past the 60 s window
            conn.execute(text("UPDATE migrations SET finished_at = '2000-01-01 00:00:00' "
                              "WHERE instance_uuid = :s"), {"s": server})
    finally:
        engine.dispose()
    pair.wait(server, "ACTIVE", b.name)
    assert pair.migration(server)["Status"] == "confirmed"
    cloud.openstack("server", "delete", "--wait", server)


# (body, microversion, status, words in the answer) for a server on node a, flavor big.
BAD = [
    ({"resize": {"flavorRef": "BIG"}}, "2.1", 400, "must change flavor"),
    ({"resize": {"flavorRef": "SMALL"}}, "2.1", 400, "Unable to resize disk down"),
    ({"resize": {"flavorRef": "nope"}}, "2.1", 400, "Unable to locate requested flavor"),
    ({"resize": {"flavorRef": "HUGE"}}, "2.1", 400, "No valid host"),
    ({"resize": {}}, "2.1", 400, "flavorRef"),
    ({"resize": {"flavorRef": "SMALL", "OS-DCF:diskConfig": "X"}}, "2.1", 400,
     "diskConfig"),
    ({"migrate": {"host": "SELF"}}, "2.56", 400, "current host"),
    ({"migrate": {"host": "nowhere"}}, "2.56", 400, "could not be found"),
    ({"migrate": {"host": "SELF"}}, "2.55", 400, "migrate"),
    ({"confirmResize": None}, "2.1", 409, "vm_state active"),
    ({"revertResize": None}, "2.1", 409, "vm_state active"),
]


def test_refusals_change_nothing(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name, "big")
    names = {"BIG": "big", "SMALL": "small", "HUGE": "huge"}
    ids = {k: cloud.openstack("flavor", "show", f"{pair.image}-{v}", "-f", "json")["id"]
           for k, v in names.items()}
    for agent in pair.agents.values():
        agent.paused.set()
    try:
        before = cloud.db_snapshot()
        failures = []
        with cloud.http(cloud.token()) as client:
            for body, version, status, words in BAD:
                ((name, args),) = body.items()
                if isinstance(args, dict):
                    args = {k: ids.get(v, a.name if v == "SELF" else v)
                            for k, v in args.items()}
                resp = client.post(f"{V}/servers/{server}/action", headers=mv(version),
                                   json={name: args})
                if resp.status_code != status or words not in resp.text:
                    failures.append((body, resp.status_code, resp.text[:300]))
        after = cloud.db_snapshot()
    finally:
        for agent in pair.agents.values():
            agent.paused.clear()
    assert not failures, "\n".join(map(str, failures))
    tables = ("migrations", "instances", "instance_actions", "instance_action_events",
              "nodes")
    assert {k: after[k] for k in tables if k != "nodes"} == \
        {k: before[k] for k in tables if k != "nodes"}
    assert _vcpus_used(cloud, b.name) == 0  # no claim left behind
    cloud.openstack("server", "delete", "--wait", server)


def test_members_locks_quota_and_private_flavors(pair: Pair) -> None:
    cloud = pair.cloud
    server = pair.boot(pair.a.name)
    with cloud.http(cloud.token()) as client:
        project = client.get(f"{V}/servers/{server}").json()["server"]["tenant_id"]
    name = unique("rzuser")
    cloud.openstack("user", "create", "--password", "pw-" + name, name)
    cloud.openstack("role", "add", "--user", name, "--project", project, "member")
    cloud.add_user(name, "pw-" + name, "admin")
    try:
        with pytest.raises(CommandFailed, match="(?i)policy|forbidden|403"):
            cloud.openstack("server", "migrate", server, user=name)  # admins' alone
        with pytest.raises(CommandFailed, match="(?i)flavor"):
            cloud.openstack("server", "resize", "--flavor", f"{pair.image}-private", server,
                            user=name)
        cloud.openstack("server", "lock", server)  # by an admin: the member is refused
        with pytest.raises(CommandFailed, match="locked"):
            cloud.openstack("server", "resize", "--flavor", f"{pair.image}-big", server,
                            user=name)
        cloud.openstack("server", "unlock", server)
        with cloud.http(cloud.token()) as client:
            resp = client.put(f"{V}/os-quota-sets/{project}",
                              json={"quota_set": {"cores": 1}})
            assert resp.status_code == 200, resp.text
            try:
                resp = client.post(f"{V}/servers/{server}/action", json={"resize": {
                    "flavorRef": cloud.openstack("flavor", "show", f"{pair.image}-big",
                                                 "-f", "json")["id"]}})
                assert resp.status_code == 403, resp.text
                assert re.search(r"Quota exceeded for cores: Requested 1, but already used "
                                 r"\d+ of 1 cores", resp.text), resp.text
            finally:
                assert client.delete(f"{V}/os-quota-sets/{project}").status_code == 202
        assert pair.show(server)["status"] == "ACTIVE"
    finally:
        cloud.users.pop(name)
        cloud.openstack("user", "delete", name)
        cloud.openstack("server", "delete", "--wait", server)


def test_a_failed_receive_keeps_the_server_on_its_source(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    pair.agents[b.name].fail.add(server)
    cloud.openstack("server", "resize", "--flavor", f"{pair.image}-big", server)
    wait_for(lambda: pair.migration(server)["Status"] == "error", 30, "error")
    shown = pair.wait(server, "ACTIVE", a.name)
    assert f"{pair.image}-small" in str(shown["flavor"])
    assert server in pair.destroyed(b) and server not in pair.destroyed(a)
    assert (_vcpus_used(cloud, a.name), _vcpus_used(cloud, b.name)) == (1, 0)
    cloud.openstack("server", "delete", "--wait", server)


def test_deleting_a_resized_server_frees_both_nodes(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    cloud.openstack("server", "resize", "--flavor", f"{pair.image}-big", server)
    pair.wait(server, "VERIFY_RESIZE", b.name)
    cloud.openstack("server", "delete", "--wait", server)
    assert (_vcpus_used(cloud, a.name), _vcpus_used(cloud, b.name)) == (0, 0)
    assert server in pair.destroyed(a)


def _resize_on_its_own_node(pair: Pair, server: str) -> None:
    """Resize server to the big flavor on node a, node b disabled meanwhile."""
    pair.cloud.openstack("compute", "service", "set", "--disable", pair.b.name,
                         "nova-compute")
    try:
        pair.cloud.openstack("server", "resize", "--flavor", f"{pair.image}-big", server)
        pair.wait(server, "VERIFY_RESIZE", pair.a.name)
    finally:
        pair.cloud.openstack("compute", "service", "set", "--enable", pair.b.name,
                             "nova-compute")


def test_resize_on_its_own_node_when_allowed(pair: Pair) -> None:
    """allow_resize_to_same_host (on in this module): with the other node disabled the
    server is resized where it is; nothing is sent, the same disk grows."""
    cloud, a = pair.cloud, pair.a
    server = pair.boot(a.name)
    _resize_on_its_own_node(pair, server)
    record = pair.migration(server)
    assert (record["Source Compute"], record["Dest Compute"]) == (a.name, a.name)
    assert _vcpus_used(cloud, a.name) == 3  # both flavors held until confirm
    assert [d for d in pair.agents[a.name].got.values() if d] == []  # nothing fetched
    assert server not in pair.agents[a.name].confirmed.values()
    cloud.openstack("server", "resize", "confirm", server)
    pair.wait(server, "ACTIVE", a.name)
    assert _vcpus_used(cloud, a.name) == 2 and server not in pair.destroyed(a)
    # The node is told to delete the disk it kept for a revert (agent/cold_migrations.py).
    wait_for(lambda: server in pair.agents[a.name].confirmed.values(), 10, "confirm_local")
    assert server not in [i for i, _ in pair.agents[a.name].reverted.values()]
    cloud.openstack("server", "delete", "--wait", server)


def test_a_revert_on_its_own_node_puts_its_kept_disk_back(pair: Pair) -> None:
    """A same-node resize reverted: the instance is withheld (stopped) while its node puts
    back the disk it kept before growing it, then starts again with its old flavor."""
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name)
    _resize_on_its_own_node(pair, server)
    cloud.openstack("server", "resize", "revert", server)
    shown = pair.wait(server, "ACTIVE", a.name)
    assert f"{pair.image}-small" in str(shown["flavor"])
    assert pair.migration(server)["Status"] == "reverted"
    # Put back once, while the instance was out of the node's instances (stopped).
    assert [w for i, w in pair.agents[a.name].reverted.values() if i == server] == [True]
    assert server not in pair.destroyed(a) and _vcpus_used(cloud, a.name) == 1
    assert "compute_finish_revert_resize" in _events(cloud, server, "revertResize")
    with a.http() as client:
        block = client.get(f"/cluster/v1/nodes/{a.id}/desired").json()["cold_migrations"]
    assert server not in {i["instance"] for k in ("revert_local", "confirm_local")
                          for i in block[k]}
    # The node alone says its disk is back: another node is refused.
    ((mid, _),) = [(m, v) for m, v in pair.agents[a.name].reverted.items()
                   if v[0] == server]
    with b.http() as client:
        resp = client.post(f"/cluster/v1/nodes/{b.id}/cold-migrations/{mid}/reverted")
    assert resp.status_code == 403, resp.text
    with a.http() as client:
        resp = client.post(f"/cluster/v1/nodes/{a.id}/cold-migrations/{mid}/reverted")
    assert resp.status_code == 409, resp.text  # said already
    cloud.openstack("server", "delete", "--wait", server)


def test_a_revert_must_fit_the_quota(pair: Pair) -> None:
    """Review finding: resize down, fill the freed cores, revert — over quota. Nova
    checks the revert's growth against the quota; so do we (403, nothing changes)."""
    cloud, a, b = pair.cloud, pair.a, pair.b
    server = pair.boot(a.name, "big")
    slim = f"{pair.image}-slim"  # the big one's disk, one core less
    cloud.openstack("flavor", "create", "--vcpus", "1", "--ram", "64", "--disk", "2", slim)
    cloud.openstack("server", "resize", "--flavor", slim, server)
    pair.wait(server, "VERIFY_RESIZE", b.name)
    with cloud.http(cloud.token()) as client:
        project = client.get(f"{V}/servers/{server}").json()["server"]["tenant_id"]
        used = client.get(f"{V}/os-quota-sets/{project}/detail").json()[
            "quota_set"]["cores"]["in_use"]
        assert client.put(f"{V}/os-quota-sets/{project}",
                          json={"quota_set": {"cores": used}}).status_code == 200
        try:
            resp = client.post(f"{V}/servers/{server}/action", json={"revertResize": None})
            assert resp.status_code == 403, resp.text
            assert "Quota exceeded for cores: Requested 1" in resp.text, resp.text
            shown = pair.show(server)
            assert (shown["status"], shown[HOST]) == ("VERIFY_RESIZE", b.name)
            assert pair.migration(server)["Status"] == "finished"
        finally:
            assert client.delete(f"{V}/os-quota-sets/{project}").status_code == 202
    cloud.openstack("server", "resize", "revert", server)
    shown = pair.wait(server, "ACTIVE", a.name)
    assert f"{pair.image}-big" in str(shown["flavor"])
    cloud.openstack("server", "delete", "--wait", server)
    cloud.openstack("flavor", "delete", slim)
