"""os-simple-tenant-usage over a scripted lifecycle: exact hours, paging, CLI and refusals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, func, select, update

from atwill.controller.db.servers import Instance
from atwill.controller.db.session import Database
from atwill.controller.db.usage_events import UsageEvent
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
            session.execute(delete(UsageEvent).where(UsageEvent.instance_id.in_(made)))
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


def lived(hour: float) -> dt.datetime:
    return dt.datetime(2021, 3, 1) + dt.timedelta(hours=hour)


# (hour, the instance's fields after that step): written one commit each, as the
# controller writes them, so the usage event log records them; its times are then set
# to the script's. create → active → stop → start → resize (2 vCPUs) → confirm →
# shelve → offload → unshelve (launched_at moves, as Nova's) → delete.
LIFE: list[tuple[float, dict]] = [
    (1, {"vm_state": "active", "launched_at": lived(1), "node_name": "usage-node"}),
    (3, {"vm_state": "stopped"}), (4, {"vm_state": "active"}),
    (5, {"vm_state": "resized", "vcpus": 2, "memory_mb": 1024, "disk_gb": 20,
         "flavor": {"name": "m1.bigger", "ephemeral": 0}}),
    (6, {"vm_state": "active"}), (8, {"vm_state": "shelved"}),
    (8.5, {"vm_state": "shelved_offloaded", "node_name": None}),
    (11, {"vm_state": "active", "launched_at": lived(11), "node_name": "usage-node"}),
    (12, {"vm_state": "deleted", "deleted": True, "terminated_at": lived(12)}),
]


def test_figures_follow_the_lifecycle_events(cloud: Cloud) -> None:
    """Stop/start bills on, a resize bills each size for its own hours, the offloaded
    time is not billed, and the unshelve's new launched_at loses nothing before it."""
    project = unique("lifeproj")  # the usage API filters rows by id: no Keystone project
    db = Database(cloud.db_url())
    try:
        with db.session() as session:
            inst = Instance(name="lifecycle", project_id=project, user_id="u", vcpus=1,
                            memory_mb=512, disk_gb=10, flavor={"name": "m1.test"},
                            vm_state="building", created_at=lived(0))
            session.add(inst)
            session.flush()
            ident = inst.id
        _stamp(db, ident, 0)
        for hour, fields in LIFE:
            with db.session() as session:
                row = session.get(Instance, ident)
                for key, value in fields.items():
                    setattr(row, key, value)
            _stamp(db, ident, hour)
        with db.session() as session:
            kinds = list(session.scalars(select(UsageEvent.event_type).where(
                UsageEvent.instance_id == ident).order_by(UsageEvent.id)))
        assert kinds.count("compute.instance.resize") == 1 and len(kinds) == 11, kinds
        day = {"start": "2021-03-01T00:00:00", "end": "2021-03-02T00:00:00"}
        with cloud.http(cloud.token()) as client:
            usage = client.get(f"{V}/{project}", params=day).json()["tenant_usage"]
            late = client.get(f"{V}/{project}", params={
                "start": "2021-03-01T04:30:00", "end": "2021-03-01T11:30:00"}
            ).json()["tenant_usage"]
        # Billed: [1, 5) at 1 vCPU, 512 MB, 10 GB; [5, 8.5) and [11, 12) at 2, 1024, 20.
        assert usage["total_hours"] == pytest.approx(4 + 3.5 + 1)
        assert usage["total_vcpus_usage"] == pytest.approx(4 * 1 + 4.5 * 2)
        assert usage["total_memory_mb_usage"] == pytest.approx(4 * 512 + 4.5 * 1024)
        assert usage["total_local_gb_usage"] == pytest.approx(4 * 10 + 4.5 * 20)
        (server,) = usage["server_usages"]
        assert (server["started_at"], server["ended_at"], server["state"]) == (
            "2021-03-01T01:00:00", "2021-03-01T12:00:00", "terminated")
        assert (server["vcpus"], server["flavor"], server["uptime"]) == (
            2, "m1.bigger", 11 * 3600)
        # A window cuts the spans: 0.5 h at 1 vCPU, then 3.5 h + 0.5 h at 2.
        assert late["total_vcpus_usage"] == pytest.approx(0.5 + 2 * 4)
        assert late["total_hours"] == pytest.approx(0.5 + 4)
    finally:
        with db.session() as session:
            session.execute(delete(UsageEvent).where(UsageEvent.instance_id == ident))
            session.execute(delete(Instance).where(Instance.id == ident))
        db.dispose()


def _stamp(db: Database, ident: str, hour: float) -> None:
    """Give the events not stamped yet (those of the last step) the script's time."""
    with db.session() as session:
        stamped = session.scalar(select(func.max(UsageEvent.id)).where(
            UsageEvent.instance_id == ident, UsageEvent.occurred_at < lived(24)))
        session.execute(update(UsageEvent).where(
            UsageEvent.instance_id == ident, UsageEvent.id > (stamped or 0)
        ).values(occurred_at=lived(hour)))


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
