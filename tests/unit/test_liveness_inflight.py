"""Review of 70980c0 (held beats released to the route, cluster/liveness "Held beats").

M1: a held beat the running flush had taken and written, whose HOLD_WAIT ran out before
the flush answered it, was released (the known order set back below it, the future
cancelled so the flush's answer was lost) and answered 409 stale by the route's claim: a
beat that was written. Now the wait does not cancel, release() says the beat is in flight
and the lane waits for the flush's answer (bounded by Liveness.failing).
M2: release() set the known order back to the one before the held beat although a full
pass had written an older-than-held but newer-than-previous beat meanwhile.
M3: a dead flush thread was started again only by a hand call of _start(): every beat
went the full way (lean() returned before reaching _start)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from atwill.controller.cluster import agents, heartbeat_lane, liveness
from atwill.controller.cluster.agents import HeartbeatStale
from atwill.controller.cluster.heartbeat_lane import HeartbeatLane
from atwill.controller.cluster.liveness import Held, Liveness, Seen, digest
from atwill.controller.db.session import Database
from atwill.controller.peercert import client_cert
from atwill.core import beat_order
from tests.unit.test_liveness_release import BODY, CERT, SOURCE, _behind, _node, _row, _worker

ORDER = beat_order.Order


def test_a_held_beat_the_flush_wrote_after_the_wait_ran_out_is_answered_200(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    _node(db)
    live = _worker(db)
    committed, go = threading.Event(), threading.Event()
    resolve = liveness._resolve

    def slow(waiters: list, written: bool) -> None:  # between the commit and the answer
        if written and waiters:
            committed.set()
            go.wait(10)
        resolve(waiters, written)

    monkeypatch.setattr(liveness, "_resolve", slow)
    monkeypatch.setattr(heartbeat_lane, "HOLD_WAIT", 0.3)
    monkeypatch.setattr(liveness, "HOLD_WAIT", 10.0)  # the flush is slow, not hung
    ctl = SimpleNamespace(db=db, settings=SimpleNamespace(overlay="none"))
    body = json.dumps({"overlay": {}, "running_vms": 0}).encode()
    scope = {"type": "http", "method": "POST", "path": "/cluster/v1/nodes/n0/heartbeat",
             "headers": [(beat_order.HEADER.lower().encode(), b"5.2")],
             "client": (SOURCE, 1), "extensions": {"tls": {"client_cert_chain": [CERT]}}}
    routed: list[int] = []
    sent: list[dict] = []

    async def route(scope: dict, receive: Any, send: Any) -> None:  # the route's checks
        await receive()
        try:
            agents._stale_in_memory(ctl, "n0", ORDER(5, 2), client_cert(scope))  # type: ignore[arg-type]
        except HeartbeatStale:
            routed.append(409)
            return
        with db.session() as s:
            routed.append(200 if agents.claim(s, "n0", ORDER(5, 2), "s0") else 409)

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    lane = HeartbeatLane(route, ctl)  # type: ignore[arg-type]
    try:
        async def main() -> None:
            task = asyncio.create_task(lane(scope, receive, send))
            await asyncio.sleep(0.05)
            assert not sent and not routed  # held
            flush = asyncio.create_task(asyncio.to_thread(live.flush))
            await asyncio.to_thread(committed.wait, 10)
            assert _row(db)[1] == 2  # the flush wrote it (5.2)
            # The lane's wait runs out meanwhile: before, it went to the route here (409)
            done, _ = await asyncio.wait({task}, timeout=0.6)
            assert not done and not routed  # in flight: it waits for the flush's answer
            go.set()
            await task
            await flush
            assert live.newest("n0") == ORDER(5, 2)  # before: back to 5.1 (below the row)

        asyncio.run(main())
    finally:
        go.set()
        live.forget("n0")
    assert routed == [] and sent[0]["status"] == 200  # before: routed == [409]


def test_release_of_an_in_flight_beat_keeps_its_order() -> None:
    live = _behind()
    held = live.lean("n0", CERT, "", BODY, {}, ORDER(1, 2), hold=True)
    assert isinstance(held, Held)
    with live._lock:  # a flush took it and wrote it (told its order), not answered yet
        live._taking, live._buffer = live._buffer, {}
        live._known["n0"].order = ORDER(1, 2)
    assert live.release("n0", held) is False  # in flight: nothing undone
    assert live.newest("n0") == ORDER(1, 2) and not held.future.done()
    assert live.release("n0", held, force=True) is True  # the flush hung: undone
    assert held.future.cancelled()


def test_release_never_sets_the_order_below_one_a_full_pass_wrote() -> None:
    live = Liveness(None)
    live._thread = threading.current_thread()
    live.full("n0", CERT, Seen("s0", "", True, 0, digest({}, None), order=ORDER(1, 0)),
              live.token("n0"))
    live._flushed, live._took = time.monotonic(), liveness.SLOW + 0.1
    held = live.lean("n0", CERT, "", BODY, {}, ORDER(1, 2), hold=True)  # B2 held
    assert isinstance(held, Held)
    # A full pass of B1 (sent to another route meanwhile) writes it: B2 stays buffered
    live.full("n0", CERT, Seen("s0", "", True, 0, digest({}, None), order=ORDER(1, 1)),
              live.token("n0"))
    assert live.newest("n0") == ORDER(1, 2)
    live.release("n0", held)
    assert "n0" not in live._buffer
    assert live.newest("n0") == ORDER(1, 1)  # before: 1.0, below the B1 in the database


def test_a_beat_starts_a_dead_flush_thread_again(db: Database) -> None:
    _node(db)
    live = _worker(db)
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    live._thread = dead
    try:
        body = SimpleNamespace(inventory=None, instances=None, volumes=None, overlay={},
                               running_vms=0)  # _worker's full pass: no instances
        got: Any = live.lean("n0", CERT, SOURCE, body, {}, ORDER(5, 2), hold=True)
        assert live._thread is not dead and live._thread.is_alive()  # before: still dead
        assert isinstance(got, Held)  # held, not full: the new thread writes it
        assert got.future.result(timeout=5) is True
        assert _row(db)[1] == 2
    finally:
        live.stop()
        thread = live._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        live.forget("n0")
    assert live._thread is not None and not live._thread.is_alive()
