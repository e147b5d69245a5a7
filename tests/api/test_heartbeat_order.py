"""Ordered heartbeats (core/beat_order): a beat whose (epoch, seq) is not above the one the
node's row holds changes nothing (last_heartbeat, state, overlay status, VM count), on
the full path (agents.claim) and on the lean one (answered from memory: never as applied
when the worker knows a newer one; its batched flush's WHERE holds the order). Before,
a late copy applied by a hung controller after newer beats could make a dead node look
alive. Beats without the header (older agents) are applied as before."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from atwill.controller.cluster.liveness import FLUSH
from atwill.core.beat_order import HEADER, LIMIT
from tests.api.aggregate_nodes import JoinedNode, wait_for
from tests.cloud import Cloud

BODY: dict[str, Any] = {"overlay": {}, "instances": {}, "running_vms": 0,
                        "host": {"uptime_s": 1}}
COLUMNS = "last_heartbeat, state, overlay_status, running_vms, beat_epoch, beat_seq"


@pytest.fixture()
def node(cloud: Cloud, tmp_path: Path) -> Iterator[JoinedNode]:
    made = JoinedNode(cloud, tmp_path, "order")
    yield made
    made.remove()


def beat(node: JoinedNode, order: str | None, **extra: Any) -> Any:
    headers = {HEADER: order} if order is not None else {}
    with node.http() as client:
        return client.post(f"/cluster/v1/nodes/{node.id}/heartbeat",
                           json={**BODY, **extra}, headers=headers)


def sql(cloud: Cloud, statement: str, **params: Any) -> Any:
    engine = create_engine(cloud.db_url())
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return result.mappings().all() if result.returns_rows else None
    finally:
        engine.dispose()


def row(cloud: Cloud, node: JoinedNode, state: bool = False) -> dict[str, Any]:
    """The node's row as beats write it; its state only when asked (the HA monitor may
    judge a test node silent between two of its requests on a loaded machine)."""
    found = sql(cloud, f"SELECT {COLUMNS} FROM nodes WHERE id = :i", i=node.id)
    out = dict(found[0])
    if isinstance(out["overlay_status"], str):  # SQLite's JSON as text
        out["overlay_status"] = json.loads(out["overlay_status"])
    if not state:
        out.pop("state")
    return out


def stale(resp: Any, held: str) -> None:
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["type"] == "heartbeat_stale"
    assert resp.headers[HEADER] == held


def test_a_late_lower_beat_changes_nothing_on_the_full_path(cloud: Cloud,
                                                            node: JoinedNode) -> None:
    first = beat(node, "1.5", running_vms=3, overlay={"beat": "new"})
    assert first.status_code == 200, first.text
    assert first.json()["ordered"] is True
    before = row(cloud, node)
    assert (before["beat_epoch"], before["beat_seq"], before["running_vms"]) == (1, 5, 3)
    time.sleep(0.05)
    # Another report (not lean): the full path's claim refuses it in its transaction.
    late = beat(node, "1.3", running_vms=7, overlay={"beat": "old"},
                instances={"x": {"state": "running"}})
    stale(late, "1.5")
    stale(beat(node, "1.5", running_vms=7), "1.5")  # a copy of the applied one
    assert row(cloud, node) == before
    # What another controller stored meanwhile (not in this worker's memory): the
    # database's order refuses a beat between the two.
    sql(cloud, "UPDATE nodes SET beat_seq = 9 WHERE id = :i", i=node.id)
    stale(beat(node, "1.7", running_vms=7, instances={"y": {"state": "running"}}), "1.9")
    assert row(cloud, node) == {**before, "beat_seq": 9}
    newer = beat(node, "2.1", running_vms=4)  # a restarted agent's first (maybe lean)
    assert newer.status_code == 200, newer.text
    after = wait_for(lambda: (found := row(cloud, node))["beat_epoch"] == 2 and found,
                     2 * FLUSH + 3, "the newer beat written")
    assert (after["beat_epoch"], after["beat_seq"], after["running_vms"]) == (2, 1, 4)
    assert after["last_heartbeat"] > before["last_heartbeat"]


def test_a_late_beat_does_not_bring_a_down_node_up(cloud: Cloud, node: JoinedNode) -> None:
    assert beat(node, "3.4").status_code == 200
    # Beat 3.4 was the last heard; the node was judged down since. Beat 3.3 (sent before,
    # held by a hung controller) arrives now: the node stays down.
    sql(cloud, "UPDATE nodes SET state = 'down', health = 'down' WHERE id = :i", i=node.id)
    before = row(cloud, node, state=True)
    stale(beat(node, "3.3", running_vms=2), "3.4")
    assert row(cloud, node, state=True) == before and before["state"] == "down"


def test_beats_without_the_header_are_applied_as_before(cloud: Cloud,
                                                        node: JoinedNode) -> None:
    assert beat(node, "4.8").status_code == 200
    old = beat(node, None, running_vms=6, instances={"z": {"state": "running"}})
    assert old.status_code == 200, old.text  # an older agent's beat: no order, applied
    after = row(cloud, node)
    assert after["running_vms"] == 6 and (after["beat_epoch"], after["beat_seq"]) == (4, 8)
    bad = beat(node, "4.x")
    assert bad.status_code == 400, bad.text


def test_a_late_lean_beat_is_not_answered_as_applied(cloud: Cloud, node: JoinedNode) -> None:
    assert beat(node, "5.1").status_code == 200  # full: the node's state part is new
    for seq in (2, 3):  # the same state part: lean, answered from memory
        resp = beat(node, f"5.{seq}", overlay={"lean": seq})
        assert resp.status_code == 200 and resp.json()["ordered"] is True, resp.text
    stale(beat(node, "5.2", overlay={"lean": "late"}), "5.3")  # from the worker's memory
    wait_for(lambda: row(cloud, node)["beat_seq"] == 3, 2 * FLUSH + 3, "the flush")
    flushed = row(cloud, node)
    assert flushed["overlay_status"] == {"lean": 3}
    stale(beat(node, "5.3", overlay={"lean": "copy"}), "5.3")
    time.sleep(3 * FLUSH)
    assert row(cloud, node) == flushed


def test_the_flush_does_not_write_a_beat_older_than_the_rows(cloud: Cloud,
                                                            node: JoinedNode) -> None:
    assert beat(node, "6.1").status_code == 200
    assert beat(node, "6.2", overlay={"lean": 2}).status_code == 200
    wait_for(lambda: row(cloud, node)["beat_seq"] == 2, 2 * FLUSH + 3, "the flush")
    # Another controller applied beat 6.9 (this worker does not know): the next lean beat
    # is answered from memory, and its flush finds the row's order newer and keeps it.
    json_value = "CAST(:o AS JSON)" if cloud.db_url().startswith("postgresql") else ":o"
    sql(cloud, f"UPDATE nodes SET beat_seq = 9, overlay_status = {json_value} WHERE id = :i",
        i=node.id, o='{"other": 9}')
    before = row(cloud, node)
    beat(node, "6.3", overlay={"lean": 3})  # lean (200) or already full (409): either way
    time.sleep(3 * FLUSH)
    assert row(cloud, node) == before
    # The flush read the row's order back: the worker knows it now.
    stale(beat(node, "6.4", overlay={"lean": 4}), "6.9")
    assert row(cloud, node) == before


# The review's attacks (session 15) ------------------------------------------------------
FENCE = ("UPDATE nodes SET state = 'down', health = 'down', fence_state = 'ok', "
         "fence_method = :m, fenced_at = CURRENT_TIMESTAMP WHERE id = :i")


def fenced(resp: Any, held: str | None) -> None:
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["type"] == "heartbeat_fenced"
    assert "fenced" in resp.json()["error"]["message"]
    assert resp.headers.get(HEADER) == held


def fence_row(cloud: Cloud, node: JoinedNode) -> dict[str, Any]:
    found = sql(cloud, "SELECT state, health, fence_state, fenced_at, beat_epoch, beat_seq "
                "FROM nodes WHERE id = :i", i=node.id)
    return dict(found[0])


def test_a_beat_sent_before_the_fence_does_not_return_the_fenced_node(
        cloud: Cloud, node: JoinedNode) -> None:
    """HIGH 2: beat 7.4, sent before the node lost power and held by a hung controller,
    came after the node was fenced (power confirmed off): it un-fenced the node and
    showed it up. Only a restarted agent's beat (a later epoch) returns it now."""
    assert beat(node, "7.3").status_code == 200
    sql(cloud, FENCE, m="ipmi", i=node.id)
    before = fence_row(cloud, node)
    late = beat(node, "7.4", running_vms=2, instances={"a": {"state": "running"}})
    fenced(late, "7.3")
    assert fence_row(cloud, node) == before and before["fence_state"] == "ok"
    # The host powered on again: its agent's new epoch (a new state part: the full path,
    # as after a real fence, which the worker's memory hears of; this one is SQL's).
    back = beat(node, "8.1", instances={"b": {"state": "running"}})
    assert back.status_code == 200, back.text
    after = fence_row(cloud, node)
    assert (after["fence_state"], after["fenced_at"], after["health"]) == (None, None, "up")
    assert (after["beat_epoch"], after["beat_seq"]) == (8, 1)


def test_a_lease_fenced_node_comes_back_with_its_run_s_next_beat(
        cloud: Cloud, node: JoinedNode) -> None:
    """A lease fence: the host may still run (its agent killed its HA VMs); its next beat
    of the same run returns it, as before."""
    assert beat(node, "7.3").status_code == 200
    sql(cloud, FENCE, m="lease", i=node.id)
    assert beat(node, "7.4", instances={"b": {"state": "running"}}).status_code == 200
    assert fence_row(cloud, node)["fence_state"] is None


def test_another_node_s_certificate_is_refused_before_the_order(
        cloud: Cloud, node: JoinedNode, tmp_path: Path) -> None:
    """LOW 5: a caller with another node's certificate got 409 and this node's pair (from
    the worker's memory) instead of 403."""
    assert beat(node, "9.5").status_code == 200
    other = JoinedNode(cloud, tmp_path, "order-other")
    try:
        for order in ("9.1", "9.9"):
            with other.http() as client:
                resp = client.post(f"/cluster/v1/nodes/{node.id}/heartbeat", json=BODY,
                                   headers={HEADER: order})
            assert resp.status_code == 403, resp.text
            assert HEADER not in resp.headers
    finally:
        other.remove()
    found = row(cloud, node)
    assert (found["beat_epoch"], found["beat_seq"]) == (9, 5)


def test_an_epoch_pushed_to_the_limit_does_not_lock_the_node_out(
        cloud: Cloud, node: JoinedNode) -> None:
    """MEDIUM 4: a beat at the parser's limit left the node's agent 400 or 409 for good."""
    assert beat(node, f"{LIMIT - 1}.1").status_code == 200
    assert beat(node, "1.1", running_vms=5).status_code == 200, "locked out"
    after = wait_for(lambda: (found := row(cloud, node))["beat_epoch"] == 1 and found,
                     2 * FLUSH + 3, "the sane pair written")
    assert (after["beat_epoch"], after["beat_seq"]) == (1, 1)
    stale(beat(node, "1.1", running_vms=5), "1.1")  # ordered again


def test_a_locked_row_answers_503_quickly(cloud: Cloud, node: JoinedNode) -> None:
    """MEDIUM 3 (PostgreSQL): a transaction holding the node's row (a hung controller's
    beat) stalled every other controller's beat of the node to the agent's timeout."""
    if not cloud.db_url().startswith("postgresql"):
        pytest.skip("SQLite writes one at a time (its busy timeout applies)")
    assert beat(node, "12.1").status_code == 200
    engine = create_engine(cloud.db_url())
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(text("SELECT id FROM nodes WHERE id = :i FOR UPDATE"), {"i": node.id})
            start = time.monotonic()
            resp = beat(node, "12.2", instances={"b": {"state": "running"}})
            took = time.monotonic() - start
            assert resp.status_code == 503, resp.text
            assert "locked" in resp.json()["error"]["message"] and took < 3, took
    finally:
        engine.dispose()
    assert beat(node, "12.3", instances={"b": {"state": "running"}}).status_code == 200


def test_a_hung_beat_transaction_is_ended_by_the_server(cloud: Cloud,
                                                       node: JoinedNode,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """MEDIUM 3 (PostgreSQL): a beat's transaction left idle after its claim (its
    controller hung) holds the row no longer than IDLE_TIMEOUT_MS."""
    if not cloud.db_url().startswith("postgresql"):
        pytest.skip("PostgreSQL's idle_in_transaction_session_timeout")
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.orm import Session

    from atwill.controller.cluster import agents
    from atwill.core.beat_order import Order

    monkeypatch.setattr(agents, "IDLE_TIMEOUT_MS", 300)
    serial = sql(cloud, "SELECT cert_serial FROM nodes WHERE id = :i", i=node.id)[0]
    engine = create_engine(cloud.db_url())
    try:
        with Session(engine) as hung:
            assert agents.claim(hung, node.id, Order(13, 1), serial["cert_serial"])
            time.sleep(1.5)  # hung, between two statements
            with pytest.raises(DBAPIError, match="idle-in-transaction"):
                hung.execute(text("SELECT 1"))
        # the row is free: a beat applies at once
        assert beat(node, "13.2", instances={"c": {"state": "running"}}).status_code == 200
    finally:
        engine.dispose()


# The review of the fixes (session 15, second pass) ---------------------------------------
def test_a_live_agent_of_a_wrongly_fenced_node_returns_at_its_next_beat(
        cloud: Cloud, node: JoinedNode, tmp_path: Path) -> None:
    """HIGH 1: a live node marked fenced off (`fence confirm` of a suspect node, a device
    that said off while the host ran) got 409 heartbeat_stale with the stored pair, below
    its agent's own: the agent never took a new epoch and resent its beats for good while
    its VMs were evacuated. The refusal's own type makes it take one at once."""
    from atwill.agent.beat_sequence import BeatSequence
    from atwill.agent.client import ClusterError, check

    (tmp_path / "beat_epoch").write_text("6\n")
    beats = BeatSequence(tmp_path)  # this run: epoch 7
    assert beat(node, beats.header()).status_code == 200  # 7.1
    sql(cloud, FENCE, m="manual", i=node.id)
    before = fence_row(cloud, node)
    refused = beat(node, beats.header(), instances={"a": {"state": "running"}})  # 7.2
    fenced(refused, "7.1")
    assert fence_row(cloud, node) == before  # a same-epoch beat alone changes nothing
    with pytest.raises(ClusterError) as answer:
        check(refused)
    assert answer.value.kind == "heartbeat_fenced"
    assert beats.fenced(answer.value.held).epoch == 8  # the agent's side: a new epoch
    back = beat(node, beats.header(), instances={"b": {"state": "running"}})  # 8.1
    assert back.status_code == 200, back.text
    after = fence_row(cloud, node)
    assert (after["fence_state"], after["fenced_at"], after["health"]) == (None, None, "up")
    assert (after["beat_epoch"], after["beat_seq"]) == (8, 1)


def test_a_fenced_node_without_a_stored_seq_is_not_locked_out(
        cloud: Cloud, node: JoinedNode) -> None:
    """MEDIUM 3: beat_seq NULL with beat_epoch set: the fenced 409 carried no pair and
    the agent could never move on; no pair held now orders nothing, as in the claim."""
    assert beat(node, "7.3").status_code == 200
    sql(cloud, FENCE, m="ipmi", i=node.id)
    sql(cloud, "UPDATE nodes SET beat_seq = NULL WHERE id = :i", i=node.id)
    back = beat(node, "7.4", instances={"b": {"state": "running"}})
    assert back.status_code == 200, back.text
    assert fence_row(cloud, node)["fence_state"] is None


def test_a_locked_row_answers_503_of_its_own_type(cloud: Cloud, node: JoinedNode) -> None:
    """MEDIUM 2 (PostgreSQL): the agent sends a beat answered so to the next controller."""
    if not cloud.db_url().startswith("postgresql"):
        pytest.skip("SQLite writes one at a time (its busy timeout applies)")
    assert beat(node, "14.1").status_code == 200
    engine = create_engine(cloud.db_url())
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(text("SELECT id FROM nodes WHERE id = :i FOR UPDATE"), {"i": node.id})
            resp = beat(node, "14.2", instances={"b": {"state": "running"}})
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"]["type"] == "heartbeat_row_busy"
    finally:
        engine.dispose()
