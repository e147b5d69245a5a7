"""os-simple-tenant-usage over a scripted lifecycle: exact hours, paging, CLI and refusals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import delete

from atwill.controller.db.servers import Instance
from atwill.controller.db.session import Database
from tests.cloud import Cloud, unique

V = "/compute/v2.1/os-simple-tenant-usage"
WINDOW = {"start": "2020-01-01T12:00:00", "end": "2020-01-02T00:00:00"}
SERVER_KEYS = {"ended_at", "flavor", "hours", "instance_id", "local_gb", "memory_mb", "name",
               "started_at", "state", "tenant_id", "uptime", "vcpus"}


def at(hour: int) -> dt.datetime:
    return dt.datetime(2020, 1, 1) + dt.timedelta(hours=hour)


@pytest.fixture(scope="module")
def projects(cloud: Cloud) -> Iterator[tuple[str, str]]:
    """Two projects with a scripted past: running, deleted mid-window, never launched."""
    names = (unique("usage"), unique("usage"))
    ids = tuple(cloud.openstack("project", "create", n, "-f", "json")["id"] for n in names)
    db = Database(cloud.db_url())
    flavor = {"name": "m1.test", "ephemeral": 0}
    rows = [
        Instance(name="running", project_id=ids[0], user_id="u", vcpus=2, memory_mb=1024,
                 disk_gb=10, flavor=flavor, vm_state="active", launched_at=at(0),
                 created_at=at(0)),
        Instance(name="gone", project_id=ids[0], user_id="u", vcpus=1, memory_mb=512,
                 disk_gb=5, flavor=flavor, vm_state="deleted", deleted=True,
                 launched_at=at(6), terminated_at=at(18), created_at=at(6)),
        Instance(name="failed", project_id=ids[0], user_id="u", vcpus=8, memory_mb=8192,
                 disk_gb=80, flavor=flavor, vm_state="error", created_at=at(13)),
        Instance(name="later", project_id=ids[0], user_id="u", vcpus=4, memory_mb=4096,
                 disk_gb=40, flavor=flavor, vm_state="active", launched_at=at(30),
                 created_at=at(30)),
        Instance(name="other", project_id=ids[1], user_id="u", vcpus=1, memory_mb=256,
                 disk_gb=1, flavor=flavor, vm_state="stopped", launched_at=at(20),
                 created_at=at(20)),
    ]
    with db.session() as session:
        session.add_all(rows)
        session.flush()
        made = [r.id for r in rows]
    try:
        yield ids
    finally:
        with db.session() as session:
            session.execute(delete(Instance).where(Instance.id.in_(made)))
        db.dispose()
        for name in names:
            cloud.openstack("project", "delete", name)


def test_exact_figures_for_one_project(cloud: Cloud, projects: tuple[str, str]) -> None:
    with cloud.http(cloud.token()) as client:
        usage = client.get(f"{V}/{projects[0]}", params=WINDOW).json()["tenant_usage"]
    assert usage["total_hours"] == pytest.approx(18.0)  # 12 h running + 6 h before delete
    assert usage["total_vcpus_usage"] == pytest.approx(2 * 12 + 1 * 6)
    assert usage["total_memory_mb_usage"] == pytest.approx(1024 * 12 + 512 * 6)
    assert usage["total_local_gb_usage"] == pytest.approx(10 * 12 + 5 * 6)
    assert (usage["start"], usage["stop"]) == (WINDOW["start"], WINDOW["end"])
    servers = {s["name"]: s for s in usage["server_usages"]}
    assert set(servers) == {"running", "gone"}
    assert all(set(s) == SERVER_KEYS for s in servers.values())
    gone = servers["gone"]
    assert (gone["state"], gone["ended_at"], gone["uptime"]) == (
        "terminated", "2020-01-01T18:00:00", 12 * 3600)
    assert servers["running"]["state"] == "active" and servers["running"]["ended_at"] is None
    assert servers["running"]["flavor"] == "m1.test"


def test_list_for_every_project_and_paging(cloud: Cloud, projects: tuple[str, str]) -> None:
    with cloud.http(cloud.token()) as client:
        listed = client.get(V, params={**WINDOW, "detailed": "1"}).json()["tenant_usages"]
        mine = {u["tenant_id"]: u for u in listed if u["tenant_id"] in projects}
        assert mine[projects[1]]["total_hours"] == pytest.approx(4.0)
        assert "server_usages" not in client.get(V, params=WINDOW).json()["tenant_usages"][0]
        seen, params = [], {**WINDOW, "detailed": "1", "limit": "1"}
        page = client.get(V, params=params, headers={"OpenStack-API-Version": "compute 2.40"})
        while True:
            body = page.json()
            seen += [s["name"] for u in body["tenant_usages"] for s in u["server_usages"]
                     if u["tenant_id"] in projects]
            assert len(body["tenant_usages"]) <= 1
            if "tenant_usages_links" not in body:
                break
            page = client.get(body["tenant_usages_links"][0]["href"],
                              headers={"OpenStack-API-Version": "compute 2.40"})
    assert sorted(seen) == ["gone", "other", "running"]


def test_cli_usage_list_and_show(cloud: Cloud, projects: tuple[str, str]) -> None:
    window = ["--start", "2020-01-01", "--end", "2020-01-02"]
    shown = cloud.openstack("usage", "show", "--project", projects[0], *window, "-f", "json")
    # OSC shows the server usages themselves under "Servers".
    assert sorted(s["name"] for s in shown["Servers"]) == ["gone", "running"]
    assert float(shown["CPU Hours"]) == pytest.approx(2 * 24 + 1 * 12)
    listed = cloud.openstack("usage", "list", *window, "-f", "json")
    rows = {r["Project"]: r for r in listed}  # ids: OSC names projects in tables only
    assert len(rows[projects[1]]["Servers"]) == 1 and float(rows[projects[1]]["CPU Hours"]) == 4


def test_refusals(cloud: Cloud, projects: tuple[str, str]) -> None:
    user = unique("usageuser")
    name = cloud.openstack("project", "show", projects[1], "-f", "json")["name"]
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", name, "--user", user, "reader")
    cloud.add_user(user, "pw-" + user, name)
    try:
        with cloud.http(cloud.token()) as client:
            backwards = client.get(V, params={"start": "2020-01-02", "end": "2020-01-01"})
            garbage = client.get(V, params={"start": "yesterday"})
            marker = client.get(V, params={"marker": "nope"},
                                headers={"OpenStack-API-Version": "compute 2.40"})
        for resp in (backwards, garbage, marker):
            assert resp.status_code == 400 and resp.json()["badRequest"]["message"]
        with cloud.http(cloud.token()) as client:
            # An empty project id (Tempest's negative test) is a 404, never the list.
            empty = client.get(f"{V}/", params=WINDOW)
        assert empty.status_code == 404 and empty.json()["itemNotFound"]["message"]
        with cloud.http(cloud.token(user)) as client:
            own = client.get(f"{V}/{projects[1]}", params=WINDOW)
            assert own.status_code == 200 and own.json()["tenant_usage"]["total_hours"] > 0
            assert client.get(f"{V}/{projects[0]}", params=WINDOW).status_code == 403
            assert client.get(V, params=WINDOW).status_code == 403
    finally:
        cloud.openstack("user", "delete", user)
