"""The usage event log over a scripted lifecycle: the API, `atwill usage events` to a
JSON lines file and to a webhook, and refusals. The node is joined through the real join
API; the test speaks for its agent.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests.api.test_server_image import FakeNode
from tests.cloud import Cloud, CommandFailed, unique

EVENTS = "/cluster/v1/usage-events"


@dataclass
class Env:
    cloud: Cloud
    node: FakeNode
    zone: str
    flavor: str
    image: str
    user: str
    project_id: str


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("usage-events")
    zone = unique("ueaz")
    node = FakeNode(cloud, tmp, zone)
    data = tmp / "disk.img"
    data.write_bytes(b"\0" * 65536)
    flavor = unique("ueflv")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", unique("ueimg"),
                            "-f", "json")["id"]
    project, user = unique("ueproj"), unique("ueuser")
    project_id = cloud.openstack("project", "create", project, "-f", "json")["id"]
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    try:
        yield Env(cloud, node, zone, flavor, image, user, project_id)
    finally:
        for server in cloud.openstack("server", "list", "-f", "json", user=user):
            cloud.openstack("server", "delete", server["ID"], user=user)
        cloud.openstack("image", "delete", image)
        cloud.openstack("flavor", "delete", flavor)
        node.remove()


def events(cloud: Cloud, **params: str | int) -> list[dict]:
    with cloud.http(cloud.token()) as client:
        resp = client.get(EVENTS, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()["events"]


def lifecycle(env: Env) -> str:
    """create → active → stopped → active → deleted, as the node reports each step."""
    cloud, node = env.cloud, env.node
    node.beat()
    made = cloud.openstack("server", "create", "--flavor", env.flavor, "--image", env.image,
                           "--no-network", "--availability-zone", env.zone, unique("ue"),
                           "-f", "json", user=env.user)
    server = made["id"]
    node.beat({server: {"state": "running"}})
    cloud.openstack("server", "stop", server, user=env.user)
    node.beat({server: {"state": "shutoff"}})
    cloud.openstack("server", "start", server, user=env.user)
    node.beat({server: {"state": "running"}})
    cloud.openstack("server", "delete", server, user=env.user)
    node.beat({})
    return server


def test_a_lifecycle_is_recorded_in_order(env: Env) -> None:
    server = lifecycle(env)
    found = events(env.cloud, instance_id=server)
    kinds = [e["event_type"] for e in found]
    assert kinds[0] == "compute.instance.create" and kinds[-1] == "compute.instance.delete"
    assert set(kinds[1:-1]) == {"compute.instance.state"}, kinds
    states = [(e["previous_state"], e["state"]) for e in found[1:-1]]
    # The states it went through, in order (a transient one may sit in between).
    walk = [found[0]["state"]] + [new for _, new in states]
    assert walk[0] == "building" and found[-1]["state"] == "deleted"
    assert ["active", "stopped", "active"] == [s for s in walk if s in ("active", "stopped")]
    assert all(old is not None for old, _ in states)
    first = found[0]
    # Created before it is placed; from its first state change on, it names its node.
    assert first["project_id"] == env.project_id and first["node"] is None
    assert {e["node"] for e in found[1:]} == {env.node.name}
    assert first["flavor"] == {"id": first["flavor"]["id"], "name": env.flavor, "vcpus": 1,
                               "ram": 64, "disk": 1}
    assert [e["id"] for e in found] == sorted(e["id"] for e in found)
    assert all(e["occurred_at"].endswith("Z") for e in found)
    # Paging by id: the next page starts after the last id seen, and nothing is repeated.
    page = events(env.cloud, instance_id=server, limit=2)
    rest = events(env.cloud, instance_id=server, since=page[-1]["id"])
    assert page + rest == found
    assert events(env.cloud, project_id=env.project_id,
                  event_type="compute.instance.delete")[-1]["instance_id"] == server


def test_usage_follows_the_recorded_lifecycle(env: Env) -> None:
    """os-simple-tenant-usage bills the server of a real create → stop → start → delete
    from its launch to its delete, stopped time included (Nova's rule), within a second
    of what its events say."""
    server = lifecycle(env)
    found = events(env.cloud, instance_id=server)

    def when(event: dict) -> dt.datetime:
        return dt.datetime.strptime(event["occurred_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    launched = when(next(e for e in found if e["state"] == "active"))
    deleted = when(found[-1])
    today = dt.datetime.now(dt.UTC).date()
    window = {"start": str(today - dt.timedelta(days=1)),
              "end": str(today + dt.timedelta(days=1))}
    with env.cloud.http(env.cloud.token()) as client:
        resp = client.get(f"/compute/v2.1/os-simple-tenant-usage/{env.project_id}",
                          params=window)
    assert resp.status_code == 200, resp.text
    (mine,) = [s for s in resp.json()["tenant_usage"]["server_usages"]
               if s["instance_id"] == server]
    assert mine["state"] == "terminated"
    started = dt.datetime.fromisoformat(mine["started_at"])
    ended = dt.datetime.fromisoformat(mine["ended_at"])
    assert abs((started - launched).total_seconds()) < 1
    assert abs((ended - deleted).total_seconds()) < 1
    assert mine["hours"] == pytest.approx((ended - started).total_seconds() / 3600,
                                          abs=1e-9)


def test_export_to_a_jsonl_file_and_a_webhook(env: Env, tmp_path: Path) -> None:
    server = lifecycle(env)
    wanted = events(env.cloud, instance_id=server)
    out = tmp_path / "usage.jsonl"
    env.cloud.atwill("usage", "events", "--instance", server, "--output", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == wanted
    # A second export appends only what is new: here, nothing.
    again = env.cloud.atwill("usage", "events", "--instance", server, "--output", str(out))
    assert "0 event(s) exported" in again.stdout
    assert [json.loads(line) for line in out.read_text().splitlines()] == wanted
    printed = env.cloud.atwill("usage", "events", "--instance", server).stdout
    assert [json.loads(line) for line in printed.splitlines()] == wanted
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server_ = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server_.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server_.server_port}/billing"
        env.cloud.atwill("usage", "events", "--instance", server, "--webhook", url)
    finally:
        server_.shutdown()
        server_.server_close()
    assert received == [{"events": wanted}]
    with pytest.raises(CommandFailed, match="webhook"):
        env.cloud.atwill("usage", "events", "--instance", server, "--webhook", url)


def test_admin_only_and_bad_queries(env: Env) -> None:
    with env.cloud.http(env.cloud.token(env.user)) as client:
        assert client.get(EVENTS).status_code == 403
    with env.cloud.http() as client:
        assert client.get(EVENTS).status_code == 401
    with env.cloud.http(env.cloud.token()) as client:
        for params in ({"event_type": "compute.instance.bogus"}, {"limit": 0},
                       {"limit": 5000}, {"since": -1}, {"since": "x"}):
            resp = client.get(EVENTS, params=params)
            assert resp.status_code == 400, (params, resp.text)
