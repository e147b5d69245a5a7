"""A controller serving from two worker processes (`atwill serve --workers 2`).

Each test picks connections by the worker that accepted them (tests/api/worker_procs):
what one worker changes, the other must honour — revoked tokens at once, revision bumps
within revision_signal.FOLLOW_EVERY plus a re-read, claims and quotas without
overbooking — and the background loops live in exactly one worker, then another.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from atwill.agent.client import tls_context
from tests.api.aggregate_nodes import INVENTORY, JoinedNode, wait_for
from tests.api.worker_procs import Connection, leader, workers
from tests.cloud import Cloud, unique
from tests.conftest import fresh_database_url

C = "/compute/v2.1"
# Wake across workers: FOLLOW_EVERY (0.05 s) and one re-read, with room for a busy
# machine; a long-poll re-reading on its own (agents.py REREAD) waits up to 1 s.
WAKE_BOUND = 0.6


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    for url in fresh_database_url(engine):
        made = Cloud(url, workers=2)
        try:
            made.init()
            # Nodes here fall silent between tests: nothing may be evacuated meanwhile.
            made.configure(ha_auto_evacuate=False)
            made.start()
            yield made
        finally:
            made.destroy()


def by_worker(cloud: Cloud, context=None) -> dict[int, Connection]:  # noqa: ANN001
    """One open connection accepted by each worker (others opened on the way are closed)."""
    wanted = workers(cloud)
    assert len(wanted) == 2, wanted
    found: dict[int, Connection] = {}
    for _ in range(40):
        with ThreadPoolExecutor(8) as pool:
            batch = list(pool.map(lambda _: Connection(cloud, context), range(8)))
        for conn in batch:
            if conn.pid in wanted and conn.pid not in found:
                found[conn.pid] = conn
            else:
                conn.close()
        if len(found) == len(wanted):
            return found
    raise AssertionError(f"connections reached only workers {sorted(found)} of {wanted}")


def pair(cloud: Cloud, context=None) -> tuple[Connection, Connection]:  # noqa: ANN001
    first, second = by_worker(cloud, context).values()
    return first, second


def test_requests_are_served_by_both_workers(cloud: Cloud) -> None:
    a, b = pair(cloud)
    try:
        assert a.pid != b.pid
        for conn in (a, b):
            status, body = conn.call("GET", "/identity/v3")
            assert status == 200 and body["version"]["id"].startswith("v3")
    finally:
        a.close()
        b.close()


def _user_token(cloud: Cloud, name: str) -> str:
    cloud.openstack("user", "create", "--password", "pw-" + name, name)
    cloud.openstack("role", "add", "--project", "admin", "--user", name, "member")
    cloud.add_user(name, "pw-" + name, "admin")
    return cloud.token(name)


def test_a_revocation_in_one_worker_is_refused_by_the_other_at_once(cloud: Cloud) -> None:
    admin = cloud.token()
    a, b = pair(cloud)
    try:
        revoked = cloud.token()
        disabled_user = unique("wkuser")
        of_disabled = _user_token(cloud, disabled_user)
        for token in (revoked, of_disabled):  # cached in worker b
            assert b.call("GET", f"{C}/flavors", token)[0] == 200
            assert b.call("GET", f"{C}/flavors", token)[0] == 200
        status, _ = a.call("DELETE", "/identity/v3/auth/tokens", admin,
                           headers={"X-Subject-Token": revoked})
        assert status == 204
        assert b.call("GET", f"{C}/flavors", revoked)[0] == 401
        user_id = cloud.openstack("user", "show", disabled_user, "-f", "json")["id"]
        status, _ = a.call("PATCH", f"/identity/v3/users/{user_id}", admin,
                           body={"user": {"enabled": False}})
        assert status == 200
        assert b.call("GET", f"{C}/flavors", of_disabled)[0] == 401
        cloud.openstack("user", "delete", disabled_user)
    finally:
        a.close()
        b.close()


def test_a_change_in_one_worker_wakes_a_long_poll_held_in_the_other(
        cloud: Cloud, tmp_path: Path) -> None:
    node = JoinedNode(cloud, tmp_path, "wknode")
    node.beat()
    node.keep_beating()  # a node marked down would bump the revision on its own
    context = tls_context(Path(cloud.cacert), tmp_path / f"{node.name}.pem",
                          tmp_path / f"{node.name}-key.pem")
    admin = cloud.token()
    polling, changing = pair(cloud, context)
    try:
        desired = f"/cluster/v1/nodes/{node.id}/desired"
        for _ in range(3):
            status, made = changing.call("POST", "/network/v2.0/networks", admin,
                                         body={"network": {"name": unique("wknet")}})
            assert status == 201, made
            status, state = polling.call("GET", f"{desired}?wait=0")
            assert status == 200, state
            answer: dict[str, float] = {}

            def hold(after: int = state["revision"], into: dict = answer) -> None:
                into["state"] = polling.call("GET", f"{desired}?after={after}&wait=20")
                into["at"] = time.monotonic()

            holder = threading.Thread(target=hold)
            holder.start()
            time.sleep(0.3)  # the long-poll is waiting in its worker
            assert holder.is_alive()
            # A port bound to the node: a change that concerns it (a network alone, with
            # no port on the node, concerns no node and wakes none).
            status, port = changing.call("POST", "/network/v2.0/ports", admin, body={"port": {
                "network_id": made["network"]["id"], "binding:host_id": node.name}})
            changed_at = time.monotonic()
            assert status == 201, port
            holder.join(20)
            assert answer["state"][0] == 200
            assert answer["state"][1]["revision"] > state["revision"]
            assert answer["at"] - changed_at < WAKE_BOUND, answer["at"] - changed_at
            status, _ = changing.call("DELETE", f"/network/v2.0/ports/{port['port']['id']}",
                                      admin)
            assert status == 204
            status, _ = changing.call("DELETE", f"/network/v2.0/networks/"
                                      f"{made['network']['id']}", admin)
            assert status == 204
    finally:
        polling.close()
        changing.close()
        node.remove()


def test_creates_racing_through_both_workers_never_overbook(
        cloud: Cloud, tmp_path: Path) -> None:
    project, user = unique("wkproj"), unique("wkuser")
    project_id = cloud.openstack("project", "create", project, "-f", "json")["id"]
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    data = tmp_path / "disk.img"
    data.write_bytes(os.urandom(4096))
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", unique("wkimg"),
                            "-f", "json")["id"]
    flavor = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1",
                             unique("wkflv"), "-f", "json")["id"]
    node = JoinedNode(cloud, tmp_path, "wkfull", {**INVENTORY, "disk_gb": 2})  # room for 2
    node.beat()
    node.keep_beating()
    token, admin = cloud.token(user), cloud.token()
    conns = [conn for _ in range(4) for conn in by_worker(cloud).values()]
    body = {"server": {"name": "race", "flavorRef": flavor, "imageRef": image,
                       "networks": "none"}}
    try:
        # Each round frees one instance of quota, and all race for it through both workers.
        for instances in (1, 2, 3):
            status, _ = conns[0].call("PUT", f"{C}/os-quota-sets/{project_id}", admin,
                                      {"quota_set": {"instances": instances}})
            assert status == 200
            with ThreadPoolExecutor(len(conns)) as pool:
                answers = list(pool.map(lambda c: c.call(
                    "POST", f"{C}/servers", token, body,
                    {"OpenStack-API-Version": "compute 2.37"}), conns))
            statuses = sorted(status for status, _ in answers)
            assert statuses == [202] + [403] * (len(conns) - 1), answers
        with cloud.http(admin) as client:
            hyp = [h for h in client.get(f"{C}/os-hypervisors/detail").json()["hypervisors"]
                   if h["hypervisor_hostname"] == node.name][0]
            placed = [s for s in client.get(f"{C}/servers/detail", params={
                "all_tenants": "1", "project_id": project_id}).json()["servers"]
                if s["OS-EXT-SRV-ATTR:host"]]
        assert hyp["local_gb_used"] == 2 and len(placed) == 2, (hyp, placed)
    finally:
        for conn in conns:
            conn.close()
        for server in cloud.openstack("server", "list", "--all-projects", "--project",
                                      project, "-f", "json"):
            cloud.openstack("server", "delete", "--wait", server["ID"])
        node.remove()
        cloud.openstack("flavor", "delete", flavor)
        cloud.openstack("image", "delete", image)
        cloud.openstack("user", "delete", user)
        cloud.openstack("project", "delete", project)


def test_killing_the_leader_worker_hands_the_loops_to_another(
        cloud: Cloud, tmp_path: Path) -> None:
    first = wait_for(lambda: leader(cloud), 5, "a leader")
    assert first in workers(cloud)
    node = JoinedNode(cloud, tmp_path, "wksilent")
    try:
        node.beat()
        os.kill(first, signal.SIGKILL)
        # Within TAKEOVER (1 s) and a little: the survivor, or the worker started anew.
        second = wait_for(lambda: (leader(cloud) or first) != first and leader(cloud), 5,
                          "another leader")
        assert second in workers(cloud)
        assert f"worker {second} runs the background loops" in cloud.log()

        def state() -> bool:
            return json.loads(cloud.atwill("node", "show", node.name).stdout)["state"] \
                == "down"

        # The node has gone silent: only a running monitor marks it down.
        wait_for(state, 10, f"{node.name} marked down by the new leader's monitor")
        assert len(workers(cloud)) == 2  # the dead one is replaced
    finally:
        node.remove()
