"""Usage across a real resize, confirmed and reverted (agent-less nodes with the small
fake agents of test_server_resize.py): each size is billed for its own hours, from the
moment the usage event log recorded the change of size."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.api.test_server_resize import Pair, cloud, pair  # noqa: F401 - fixtures
from tests.cloud import Cloud

USAGE = "/compute/v2.1/os-simple-tenant-usage"
EVENTS = "/cluster/v1/usage-events"


def when(event: dict) -> dt.datetime:
    return dt.datetime.strptime(event["occurred_at"], "%Y-%m-%dT%H:%M:%S.%fZ")


def usage(api: Cloud, project: str, start: str, end: str) -> dict:
    with api.http(api.token()) as client:
        resp = client.get(f"{USAGE}/{project}", params={"start": start, "end": end})
    assert resp.status_code == 200, resp.text
    return resp.json()["tenant_usage"]


def vcpu_hours(api: Cloud, server: str) -> tuple[float, float, float]:
    """(vCPU hours the API bills over the server's life, those its recorded size changes
    make, its hours). The window is its life, so the project's total is its own."""
    with api.http(api.token()) as client:
        found = client.get(EVENTS, params={"instance_id": server}).json()["events"]
    project = found[0]["project_id"]
    today = dt.datetime.now(dt.UTC).date()
    (mine,) = [s for s in usage(api, project, str(today - dt.timedelta(days=1)),
                                str(today + dt.timedelta(days=1)))["server_usages"]
               if s["instance_id"] == server]
    started = dt.datetime.fromisoformat(mine["started_at"])
    ended = dt.datetime.fromisoformat(mine["ended_at"])
    life = usage(api, project, mine["started_at"], mine["ended_at"])
    assert [s["instance_id"] for s in life["server_usages"]] == [server]
    resizes = [(when(e), e["flavor"]["vcpus"]) for e in found
               if e["event_type"] == "compute.instance.resize"]
    assert resizes, found
    marks = [(started, found[0]["flavor"]["vcpus"]), *resizes, (ended, 0)]
    expected = sum((y[0] - x[0]).total_seconds() / 3600 * x[1]
                   for x, y in zip(marks, marks[1:], strict=False))
    return float(life["total_vcpus_usage"]), expected, float(mine["hours"])


def test_a_confirmed_and_a_reverted_resize_bill_each_size(pair: Pair) -> None:  # noqa: F811
    api, a, b = pair.cloud, pair.a, pair.b
    for revert in (False, True):
        server = pair.boot(a.name)
        time.sleep(0.5)
        api.openstack("server", "resize", "--flavor", f"{pair.image}-big", server)
        pair.wait(server, "VERIFY_RESIZE", b.name)
        time.sleep(0.5)
        api.openstack("server", "resize", "revert" if revert else "confirm", server)
        pair.wait(server, "ACTIVE", a.name if revert else b.name)
        time.sleep(0.5)
        api.openstack("server", "delete", "--wait", server)
        total, expected, lifetime = vcpu_hours(api, server)
        assert total == pytest.approx(expected, abs=1e-9), revert
        # Between one and two vCPUs over the life: each size was billed a while.
        assert lifetime < total < 2 * lifetime, (revert, lifetime, total)
