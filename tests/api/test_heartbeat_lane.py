"""The lean heartbeat path (cluster/liveness.py, cluster/heartbeat_lane.py): a beat that
only says the node lives is answered from memory and written in a batch within the flush
interval; what it must not do: lose a restart notice given meanwhile, keep answering a
removed node, or change the answers to bad or oversized bodies (a VM count beyond its
32-bit column included: buffered, it failed every batched flush of its worker while the
lean replies kept saying 'up')."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atwill.controller.cluster.liveness import FLUSH
from atwill.core.nodereports import HEARTBEAT_BYTES
from tests.api.admin_api import admin_request
from tests.api.aggregate_nodes import JoinedNode, wait_for
from tests.cloud import Cloud

BODY: dict[str, Any] = {"overlay": {}, "instances": {}, "running_vms": 0,
                        "host": {"uptime_s": 1}}


@pytest.fixture()
def node(cloud: Cloud, tmp_path: Path) -> Iterator[JoinedNode]:
    made = JoinedNode(cloud, tmp_path, "lane")
    yield made
    made.remove()


def beat(node: JoinedNode, **extra: Any) -> Any:
    with node.http() as client:
        return client.post(f"/cluster/v1/nodes/{node.id}/heartbeat", json={**BODY, **extra})


def view(cloud: Cloud, node: JoinedNode) -> dict[str, Any]:
    resp = admin_request(cloud, "GET", f"/cluster/v1/nodes/{node.id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def heard(cloud: Cloud, node: JoinedNode) -> dt.datetime:
    return dt.datetime.fromisoformat(view(cloud, node)["last_heartbeat"].rstrip("Z"))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def test_lean_beats_reach_the_database_within_the_flush(cloud: Cloud, node: JoinedNode
                                                       ) -> None:
    assert beat(node).status_code == 200  # full: the node's state part is new
    first = heard(cloud, node)  # whole seconds, as the API shows every timestamp
    beats, last = 0, first
    # The same state part again (lean), until one is sent in a later second than the full
    # beat's: three beats 0.3 s apart could all fall in its second (the CI flake).
    while beats < 3 or last < first + dt.timedelta(seconds=1):
        time.sleep(0.3)
        last = now()
        resp = beat(node, host={"uptime_s": 2})
        assert resp.status_code == 200, resp.text
        assert resp.json()["state"] == "up" and resp.headers["x-openstack-request-id"]
        beats += 1
        assert beats < 20, "the clock did not move on"
    assert last.replace(microsecond=0) > first
    wait_for(lambda: heard(cloud, node) >= last.replace(microsecond=0), 2 * FLUSH + 2,
             "the buffered beats written")
    assert now() - heard(cloud, node) < dt.timedelta(seconds=2)
    assert view(cloud, node)["state"] == "up"


def test_a_restart_notice_given_while_a_beat_is_buffered_is_kept(cloud: Cloud,
                                                                 node: JoinedNode) -> None:
    assert beat(node).status_code == 200
    assert beat(node).status_code == 200  # lean, in the buffer
    with node.http() as client:
        given = client.post(f"/cluster/v1/nodes/{node.id}/restart-notice",
                            json={"seconds": 30})
        assert given.status_code == 200, given.text
        time.sleep(3 * FLUSH)  # the buffered beat's flush has run
        again = client.post(f"/cluster/v1/nodes/{node.id}/restart-notice",
                            json={"seconds": 30})
    # The notice is still on the node: a second one is refused while it holds.
    assert again.status_code == 409, again.text


def test_a_removed_node_is_told_within_a_few_beats(cloud: Cloud, node: JoinedNode) -> None:
    assert beat(node).status_code == 200
    assert beat(node).status_code == 200
    resp = admin_request(cloud, "DELETE", f"/cluster/v1/nodes/{node.name}",
                         params={"force": "true"})
    assert resp.status_code == 204, resp.text
    codes = []
    for _ in range(8):
        codes.append(beat(node))
        if codes[-1].status_code != 200:
            break
        time.sleep(FLUSH)
    assert codes[-1].status_code == 403, [c.status_code for c in codes]
    assert codes[-1].json()["error"]["type"] == "node_removed"
    assert len(codes) <= 3  # at most the beats before the next flush were answered


def test_bad_and_oversized_bodies_are_answered_as_by_the_route(cloud: Cloud,
                                                              node: JoinedNode) -> None:
    assert beat(node).status_code == 200
    assert beat(node).status_code == 200
    with node.http() as client:
        url = f"/cluster/v1/nodes/{node.id}/heartbeat"
        bad = client.post(url, content=b"{not json",
                          headers={"content-type": "application/json"})
        assert bad.status_code == 400, bad.text
        shape = client.post(url, json={**BODY, "running_vms": -1})
        assert shape.status_code == 400, shape.text
        unknown = client.post(url, json={**BODY, "surprise": 1})
        assert unknown.status_code == 400, unknown.text
        big = client.post(url, json={**BODY, "host": {"pad": "x" * HEARTBEAT_BYTES}})
        assert big.status_code == 413, big.text
        other = client.post("/cluster/v1/nodes/not-this-node/heartbeat", json=BODY)
        assert other.status_code in (403, 404), other.text


def test_a_vm_count_beyond_the_column_is_refused(node: JoinedNode) -> None:
    url = f"/cluster/v1/nodes/{node.id}/heartbeat"
    with node.http() as client:
        for _ in range(2):  # full, then lean
            assert client.post(url, json=BODY).status_code == 200
        for count in (2**31, 2**63):
            huge = client.post(url, json={**BODY, "running_vms": count})
            assert huge.status_code == 400, huge.text
        inventory = client.post(url, json={**BODY, "running_vms": 2**31, "inventory": {}})
        assert inventory.status_code == 400, inventory.text  # the full path too
        fine = client.post(url, json={**BODY, "running_vms": 2**31 - 1})
        assert fine.status_code == 200, fine.text
