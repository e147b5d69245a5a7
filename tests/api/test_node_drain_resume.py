"""A drain outlives its controller: killed mid-drain (SIGKILL of its process group, no
goodbye), the controller started again resumes the drain by itself (no POST), moves no
instance twice, and a restore during the resumed drain stops it.

Two agent-less nodes whose small fake agents (test_server_live_migration.MigratingAgent)
hold each live migration "running" until the test lets it complete.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.aggregate_nodes import wait_for
from tests.api.lockout_cloud import own_cloud
from tests.api.test_node_drain import NODES, call
from tests.api.test_server_live_migration import MigratingAgent, Pair, migrating_pair
from tests.cloud import Cloud


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    """A controller of its own: this module kills it."""
    yield from own_cloud(engine, ha_auto_evacuate=False)


@pytest.fixture(scope="module")
def pair(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with migrating_pair(cloud, tmp_path_factory.mktemp("drainresume"), "dres") as made:
        try:
            yield made
        finally:
            call(cloud, "POST", f"{NODES}/{made.a.name}/restore")
            made.ending.clear()  # every migration still held completes


def drain_view(pair: Pair) -> dict[str, Any]:
    status, view = call(pair.cloud, "GET", f"{NODES}/{pair.a.name}/drain")
    assert status == 200, view
    return view


def crash_and_restart(pair: Pair) -> float:
    """Kill the controller's whole process group, start it again; the agents (which end
    on a refused connection) start again too. The seconds the controller was away."""
    cloud = pair.cloud
    for agent in pair.agents.values():
        agent.stop()
    assert cloud.proc is not None
    started = time.monotonic()
    os.killpg(cloud.proc.pid, signal.SIGKILL)
    cloud.proc.wait(10)
    cloud.proc = None
    cloud.start()
    pair.agents = {n.name: MigratingAgent(n, pair.ending) for n in (pair.a, pair.b)}
    return time.monotonic() - started


def held_servers(pair: Pair, count: int) -> list[str]:
    servers = [pair.boot(pair.a.name) for _ in range(count)]
    for server in servers:
        pair.ending[server] = "hold"  # its live migration stays running until released
    return servers


def names(pair: Pair, servers: list[str]) -> dict[str, str]:
    return {pair.show(s)["name"]: s for s in servers}


def test_a_killed_controller_resumes_the_drain_by_itself_moving_each_server_once(
        pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    servers = held_servers(pair, 3)
    status, view = call(cloud, "POST", f"{NODES}/{a.name}/drain", json={"parallel": 2})
    assert status == 202 and view["running"] and view["instances"] == 3
    wait_for(lambda: (v := drain_view(pair))["moving"] and len(v["moving"]) == 2
             and v["queued"] == 1, 30, "two live migrations under way, one queued")
    away = crash_and_restart(pair)
    view = drain_view(pair)  # recorded: it still shows, from the database
    assert view["draining"] and view["running"] and len(view["moving"]) == 2, view
    pair.ending.clear()  # the two under way complete; the third goes once one has
    began = time.monotonic()
    done = wait_for(lambda: (v := drain_view(pair))["finished"] and v, 60,
                    "the resumed drain to finish")
    assert (done["instances"], done["done"], done["total"], done["stuck"]) == (0, 3, 3, [])
    for server in servers:
        pair.wait_server(server, b.name)
        kinds = [(m["Type"], m["Status"]) for m in pair.migrations(server)]
        assert kinds == [("live-migration", "completed")], (server, kinds)
    print(f"controller away {away:.1f} s; drain finished {time.monotonic() - began:.1f} s "
          "after the held migrations were released")
    status, view = call(cloud, "POST", f"{NODES}/{a.name}/restore")
    assert status == 200 and view["draining"] is False


def test_a_restore_stops_a_drain_resumed_after_a_crash(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    servers = held_servers(pair, 3)
    by_name = names(pair, servers)
    status, _ = call(cloud, "POST", f"{NODES}/{a.name}/drain", json={"parallel": 1})
    assert status == 202
    (first,) = wait_for(lambda: drain_view(pair)["moving"], 30, "one live migration")
    crash_and_restart(pair)
    # Released, the first completes; the resumed drain then starts the second by itself.
    del pair.ending[by_name[first]]
    second = wait_for(lambda: [n for n in drain_view(pair)["moving"] if n != first], 30,
                      "the resumed drain to start a second migration")[0]
    status, view = call(cloud, "POST", f"{NODES}/{a.name}/restore")
    assert status == 200 and view["draining"] is False and view["running"] is False
    del pair.ending[by_name[second]]  # what was under way completes (as in Nova)
    pair.wait_server(by_name[first], b.name)
    pair.wait_server(by_name[second], b.name)
    time.sleep(3.0)  # three passes of the drain loop
    (third,) = set(by_name) - {first, second}
    assert pair.show(by_name[third])["OS-EXT-SRV-ATTR:host"] == a.name
    assert pair.migrations(by_name[third]) == []
    assert call(cloud, "GET", f"{NODES}/{a.name}")[1]["enabled"] is True
