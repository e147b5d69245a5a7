"""The cluster map's live log over server-sent events: a node falling silent (suspect, then
down) and its instance evacuated to another node are told as they happen (the operator's
view of a failover). Fencing's own line ("up → fenced") is tested in
tests/unit/test_cluster_map.py; a fence device is beyond agent-less nodes.

Agent-less nodes in a zone of their own; the evacuation is Nova's, by the admin, after
`openstack compute service set --down` (as an operator does once a node is known off).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.api.dashboard_web import D, WebUser
from tests.api.test_server_image import FakeNode
from tests.cloud import Cloud, unique

V = "/compute/v2.1"


def test_a_node_going_down_and_its_instance_moving_are_logged_live(
        cloud: Cloud, engine: str, tmp_path: Path) -> None:
    if engine != "sqlite":
        pytest.skip("the map's reads are the APIs', tested on both engines elsewhere")
    zone = unique("dmapaz")
    a, b = FakeNode(cloud, tmp_path, zone), FakeNode(cloud, tmp_path, zone)
    data = tmp_path / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", unique("dmapimg"), "-f",
                            "json")["id"]
    flavor = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1",
                             unique("dmapflv"), "-f", "json")["id"]
    admin, server = WebUser(cloud), None
    try:
        admin.login_as("admin")
        name = unique("dmapvm")
        server = cloud.openstack("server", "create", "--flavor", flavor, "--image", image,
                                 "--no-network", "--availability-zone", f"{zone}:{a.name}",
                                 name, "-f", "json")["id"]
        a.beat({server: {"state": "running"}})
        with admin.client.stream("GET", f"{D}/admin/map/events") as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            first = next(json.loads(line[6:]) for line in lines if line.startswith("data: "))
            assert name in first["html"] and a.name in first["html"]
            a.stop_beating()

            def until(done: Callable[[list[str]], bool]) -> list[str]:
                """The log as the stream tells it, until done(log) (30 s at most)."""
                deadline, log = time.monotonic() + 30, list[str]()
                for line in lines:
                    if line.startswith("data: "):
                        html = json.loads(line[6:])["html"]
                        log = [part.split("</li>")[0] for part in html.split("<li>")[1:]]
                        if done(log):
                            return log
                    assert time.monotonic() < deadline, log
                raise AssertionError(f"the stream ended: {log}")

            # Silent, it is suspect first (the monitor's step) — told before the operator
            # forces it down, which would otherwise take it from up to down at once.
            until(lambda log: any(entry.endswith(f"Node {a.name}: up → suspect.")
                                  for entry in log))
            cloud.openstack("compute", "service", "set", "--down", a.name, "nova-compute")
            with cloud.http(cloud.token()) as client:
                done = client.post(f"{V}/servers/{server}/action",
                                   json={"evacuate": {"host": b.name}},
                                   headers={"OpenStack-API-Version": "compute 2.29"})
            assert done.status_code == 200, done.text
            moved = f"Instance {name} moved from {a.name} to {b.name}."
            until(lambda log: any(moved in entry for entry in log) and any(
                entry.endswith(f"Node {a.name}: suspect → down.") for entry in log))
    finally:
        admin.close()
        if server:
            cloud.openstack("server", "delete", server)
        cloud.openstack("compute", "service", "set", "--up", a.name, "nova-compute",
                        check=False)
        a.remove()
        b.remove()
        cloud.openstack("image", "delete", image)
        cloud.openstack("flavor", "delete", flavor)
