"""Usage across a real shelve, offload and unshelve (agent-less nodes, as in
test_server_shelve.py): the offloaded time is not billed, and the unshelve, which moves
launched_at as Nova's does, loses none of the hours before it."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.api.test_server_shelve import Env, env, wait_for  # noqa: F401 - env: a fixture

USAGE = "/compute/v2.1/os-simple-tenant-usage"
EVENTS = "/cluster/v1/usage-events"


def when(event: dict) -> dt.datetime:
    return dt.datetime.strptime(event["occurred_at"], "%Y-%m-%dT%H:%M:%S.%fZ")


def test_offloaded_time_is_not_billed_and_the_unshelve_keeps_the_past(
        env: Env) -> None:  # noqa: F811 - the imported fixture
    server = env.server()
    sid = server["id"]
    time.sleep(0.5)
    env.shelve(server)
    time.sleep(1.5)  # offloaded: billed nothing
    assert env.action(sid, {"unshelve": None}).status_code == 202
    host = wait_for(lambda: env.show(sid, admin=True)["OS-EXT-SRV-ATTR:host"])
    env.node(host).beat({sid: {"state": "running", "rebuild_serial": 0}})
    assert wait_for(lambda: env.show(sid)["status"] == "ACTIVE")
    time.sleep(0.5)
    env.delete(sid)
    with env.cloud.http(env.cloud.token()) as client:
        found = client.get(EVENTS, params={"instance_id": sid}).json()["events"]
        today = dt.datetime.now(dt.UTC).date()
        usage = client.get(f"{USAGE}/{env.project_id}", params={
            "start": str(today - dt.timedelta(days=1)),
            "end": str(today + dt.timedelta(days=1))}).json()["tenant_usage"]
    (mine,) = [s for s in usage["server_usages"] if s["instance_id"] == sid]
    states = [(e["state"], when(e)) for e in found]
    launched = next(t for s, t in states if s == "active")
    offloaded = next(t for s, t in states if s == "shelved_offloaded")
    back = next(t for s, t in states if s == "active" and t > offloaded)
    deleted = when(found[-1])
    started = dt.datetime.fromisoformat(mine["started_at"])
    ended = dt.datetime.fromisoformat(mine["ended_at"])
    assert abs((started - launched).total_seconds()) < 1  # the first launch, not the last
    assert abs((ended - deleted).total_seconds()) < 1
    billed = ((offloaded - started) + (ended - back)).total_seconds() / 3600
    assert mine["hours"] == pytest.approx(billed, abs=1e-9)
    # Whole-second times: the 1.5 s offloaded shows as at least 1 s not billed.
    assert (ended - started).total_seconds() / 3600 - mine["hours"] >= 1 / 3600 - 1e-9
