"""Review of bde462e (held beats, cluster/liveness "Held beats"). A held ordered beat that
goes on to the full route (not written: the row turned suspect; or not within HOLD_WAIT)
was answered 409 stale by that route and never processed: its hold had set the worker's
known order to its own and buffered it, so the route's _stale_in_memory found it not
newer than itself. A suspect node's returning beat was refused (it could be judged down
and fenced while alive). Now the lane undoes the hold first (Liveness.release) and the
database's claim decides. These go through the real lane, agents.lean, the worker's
buffer and flush on a real database (both engines); the route is its staleness check and
claim (agents._stale_in_memory, agents.claim) and the health a full pass writes.
Also: HOLD_WAIT within half the agent's BEAT_ANSWER; a hung flush or a dead flush thread
holds no beat (they go full) and a dead thread is started again; waiters are pruned and
capped per node."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest

from atwill.agent import client as agent_client
from atwill.controller.cluster import agents, heartbeat_lane, liveness
from atwill.controller.cluster.agents import HeartbeatStale
from atwill.controller.cluster.heartbeat_lane import HeartbeatLane
from atwill.controller.cluster.liveness import Held, Liveness, Seen, digest
from atwill.controller.db.models import Node
from atwill.controller.db.session import Database, migrate
from atwill.controller.peercert import client_cert
from atwill.core import beat_order, ha_health

CERT = b"cert-n0"
SOURCE = "10.0.0.9"
BODY = SimpleNamespace(inventory=None, instances={}, volumes=None, overlay={}, running_vms=0)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _node(db: Database) -> None:
    migrate(db.engine)
    with db.session() as s:
        s.add(Node(id="n0", name="node0", state="up", health="up", last_heartbeat=_now(),
                   host_status={}, cert_serial="s0", beat_epoch=5, beat_seq=1))


def _worker(db: Database) -> Liveness:
    """The controller's worker for db after a full pass of beat 5.1, its flush behind
    (the last one ran over SLOW; its loop is this thread: flushes are called here)."""
    live = liveness.of(db)
    live.full("n0", CERT, Seen("s0", SOURCE, True, 0, digest(None, None),
                               order=beat_order.Order(5, 1)), live.token("n0"))
    live._thread = threading.current_thread()
    live._flushed, live._took = time.monotonic(), liveness.SLOW + 0.1
    return live


def _through_lane(db: Database, order: str, flush: bool) -> tuple[list[dict], list[int]]:
    """An ordered lean beat of n0 through the lane; while it is held, the row turns
    suspect and (flush) a flush runs. The route: what the reply was (200 or 409)."""
    ctl = SimpleNamespace(db=db, settings=SimpleNamespace(overlay="none"))
    body = json.dumps({"overlay": {}, "running_vms": 0}).encode()  # no instances (relay)
    scope = {"type": "http", "method": "POST", "path": "/cluster/v1/nodes/n0/heartbeat",
             "headers": [(beat_order.HEADER.lower().encode(), order.encode())],
             "client": (SOURCE, 1), "extensions": {"tls": {"client_cert_chain": [CERT]}}}
    sent: list[dict] = []
    routed: list[int] = []

    async def route(scope: dict, receive: Any, send: Any) -> None:
        await receive()
        parsed = beat_order.parse(order)
        assert parsed is not None
        try:  # the route's first check (agents._heartbeat)
            agents._stale_in_memory(ctl, "n0", parsed, client_cert(scope))  # type: ignore[arg-type]
        except HeartbeatStale:
            routed.append(409)
            return
        with db.session() as s:  # its claim, then the full pass (health back up)
            if not agents.claim(s, "n0", parsed, "s0"):
                routed.append(409)
                return
            node = s.get(Node, "n0")
            node.health, node.last_heartbeat = ha_health.UP, _now()
        routed.append(200)

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    async def main() -> None:
        task = asyncio.create_task(HeartbeatLane(route, ctl)(scope, receive, send))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert not sent and not routed  # held
        assert isinstance(liveness.of(db)._buffer["n0"].waiters[0], Future)
        with db.session() as s:  # the monitor judged it suspect meanwhile
            s.get(Node, "n0").health = ha_health.SUSPECT
        if flush:  # it finds the row suspect: not written
            await asyncio.to_thread(liveness.of(db).flush)
        await task

    asyncio.run(main())
    return sent, routed


def _row(db: Database) -> tuple[str, int | None]:
    with db.session() as s:
        node = s.get(Node, "n0")
        return node.health, node.beat_seq


@pytest.mark.parametrize("flush", [True, False], ids=["not-written", "wait-ran-out"])
def test_a_held_ordered_beat_sent_to_the_route_is_processed(
        db: Database, flush: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    _node(db)
    live = _worker(db)
    monkeypatch.setattr(heartbeat_lane, "HOLD_WAIT", 2.0 if flush else 0.1)
    try:
        sent, routed = _through_lane(db, "5.2", flush)
        assert not sent and routed == [200]  # was 409 stale: the beat never processed
        assert _row(db) == (ha_health.UP, 2)
        assert "n0" not in live._buffer  # the held copy is not written after the route's
        assert live.newest("n0") == beat_order.Order(5, 1)  # the hold undone
    finally:
        live.forget("n0")


def test_hold_wait_leaves_the_route_time_within_the_agent_s_answer() -> None:
    assert heartbeat_lane.HOLD_WAIT == liveness.HOLD_WAIT
    assert liveness.HOLD_WAIT <= agent_client.BEAT_ANSWER / 2


# The worker alone (no database needed) -----------------------------------------------
def _behind() -> Liveness:
    live = Liveness(None)
    live.full("n0", CERT, Seen("s0", "", True, 0, digest({}, None)), live.token("n0"))
    live._thread = threading.current_thread()
    live._flushed, live._took = time.monotonic(), liveness.SLOW + 0.1
    return live


def test_a_hung_flush_holds_no_beat() -> None:
    live = _behind()
    live._began = time.monotonic() - liveness.HOLD_WAIT - 0.1  # running, not raising
    assert live.lean("n0", CERT, "", BODY, {}, hold=True) is None  # the full way
    live._began = time.monotonic() - liveness.SLOW - 0.01  # slow, not hung: held
    assert isinstance(live.lean("n0", CERT, "", BODY, {}, hold=True), Held)


def test_a_dead_flush_thread_is_not_started_again_after_stop() -> None:
    """(A beat starting a dead thread again: test_liveness_inflight.)"""
    live = _behind()
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    live._thread = dead
    live.stop()
    assert live.lean("n0", CERT, "", BODY, {}, hold=True) is None  # the full way
    live._start()  # stopped: not started again
    assert live._thread is dead


def test_waiters_are_pruned_and_capped_per_node() -> None:
    live = _behind()
    held = [live.lean("n0", CERT, "", BODY, {}, hold=True) for _ in range(liveness.WAITERS)]
    assert all(isinstance(h, Held) for h in held)
    assert live.lean("n0", CERT, "", BODY, {}, hold=True) is None  # the fifth goes full
    for h in held[:2]:
        h.future.cancel()  # their beats gave up waiting  # type: ignore[union-attr]
    again = live.lean("n0", CERT, "", BODY, {}, hold=True)
    assert isinstance(again, Held)
    assert live._buffer["n0"].waiters == [h.future for h in held[2:]] + [again.future]  # type: ignore[union-attr]
    # A flush's put back prunes too
    beat = live._buffer.pop("n0")
    newer = live.lean("n0", CERT, "", BODY, {}, hold=True)
    held[2].future.cancel()  # type: ignore[union-attr]
    with live._lock:
        live._put_back("n0", beat)
    assert live._buffer["n0"].waiters == [held[3].future, again.future,  # type: ignore[union-attr]
                                          newer.future]  # type: ignore[union-attr]


def test_release_resolves_the_replaced_beats_waiters_and_keeps_a_newer_order() -> None:
    live = _behind()
    first = live.lean("n0", CERT, "", BODY, {}, beat_order.Order(1, 1), hold=True)
    second = live.lean("n0", CERT, "", BODY, {}, beat_order.Order(1, 2), hold=True)
    assert isinstance(first, Held) and isinstance(second, Held)
    first.future.cancel()
    live.release("n0", first)  # replaced by second's beat: it stays, with its order
    assert live._buffer["n0"].waiters == [second.future]
    assert live.newest("n0") == beat_order.Order(1, 2)
    live.release("n0", second)  # its own beat: dropped, the order as before it
    assert "n0" not in live._buffer and live.newest("n0") == beat_order.Order(1, 1)
