"""While the flush is behind (cluster/liveness.behind), a lean beat is no longer sent the
full way (a dozen statements in a thread, ten times a lean beat's CPU: under load that
made the flush slower still, and every beat went full) but held: buffered, and answered
only once a flush wrote it (True), or a full pass of the node wrote a newer one; a beat
the flush did not write (the node changed) goes on to the full route, and so does every
beat while the flush fails. The lane (heartbeat_lane) answers a held beat after its
write, and passes it to the route when it was not written or not within HOLD_WAIT."""

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

from atwill.controller.cluster import heartbeat_lane, liveness
from atwill.controller.cluster.heartbeat_lane import HeartbeatLane
from atwill.controller.cluster.liveness import Held, Known, Liveness, Seen, digest
from atwill.controller.db.models import Node
from atwill.controller.db.session import Database, migrate
from atwill.core import ha_health

BODY = SimpleNamespace(inventory=None, instances={}, volumes=None, overlay={}, running_vms=0)
IDS = ["n0", "n1"]


def _behind(db: Database | None) -> Liveness:
    """A worker whose last flush ran over SLOW (a flush loop runs: not started here)."""
    live = Liveness(db)
    now = time.monotonic()
    for index, node_id in enumerate(IDS):
        live._known[node_id] = Known(b"c", f"s{index}", "", digest({}, None), 0, 0, True,
                                     now, checked_at=now)
    live._thread = threading.current_thread()
    live._flushed, live._took = now, liveness.SLOW + 0.1
    return live


def _fleet(db: Database, **n1: Any) -> None:
    migrate(db.engine)
    with db.session() as s:
        for index, node_id in enumerate(IDS):
            s.add(Node(id=node_id, name=f"node{index}", state="up", health="up",
                       last_heartbeat=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                       host_status={}, cert_serial=f"s{index}"))
        s.flush()
        for key, value in n1.items():
            setattr(s.get(Node, "n1"), key, value)


def test_behind_a_beat_is_held_until_its_flush_wrote_it(db: Database) -> None:
    _fleet(db, health=ha_health.SUSPECT)  # n1 changed: its beat is not written
    live = _behind(db)
    assert live.lean("n0", b"c", "", BODY, {}) is None  # no hold asked: the full way
    held = [live.lean(node_id, b"c", "", BODY, {}, hold=True) for node_id in IDS]
    assert all(isinstance(h, Held) and not h.future.done() for h in held)
    assert live.flush() == 1
    assert held[0].future.result(0) is True  # type: ignore[union-attr]
    assert held[1].future.result(0) is False  # type: ignore[union-attr]  # goes full


def test_a_newer_beat_answers_the_held_one_it_replaced(db: Database) -> None:
    _fleet(db)
    live = _behind(db)
    first = live.lean("n0", b"c", "", BODY, {}, hold=True)
    live._took = 0.0  # the flush keeps up again: the next beat is lean at once
    assert live.lean("n0", b"c", "", BODY, {}, hold=True) == 0
    assert isinstance(first, Held) and not first.future.done()
    assert live.flush() == 1
    assert first.future.result(0) is True


def test_a_failed_flush_keeps_the_held_beats_and_then_beats_go_full(db: Database) -> None:
    _fleet(db)
    live = _behind(db)
    held = live.lean("n0", b"c", "", BODY, {}, hold=True)
    assert isinstance(held, Held)

    def failing(beats: dict[str, Any], serials: dict[str, str]) -> int:
        raise RuntimeError("database gone")

    live._write = failing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        live.flush()
    assert not held.future.done() and live._buffer["n0"].waiters == [held.future]
    live._flushed -= 1.0  # and no flush succeeded since: behind, failing
    assert live.lean("n1", b"c", "", BODY, {}, hold=True) is None  # the full way
    del live._write
    assert live.flush() == 1 and held.future.result(0) is True


def test_a_full_pass_or_a_removal_answers_a_held_beat() -> None:
    live = _behind(None)
    held = [live.lean(node_id, b"c", "", BODY, {}, hold=True) for node_id in IDS]
    live.full("n0", b"c", Seen("s0", "", True, 1, digest({}, None)), live.token("n0"))
    live.forget("n1")
    assert held[0].future.result(0) is True  # type: ignore[union-attr]
    assert held[1].future.result(0) is False  # type: ignore[union-attr]


def _lane(outcome: bool | None, monkeypatch: pytest.MonkeyPatch
          ) -> tuple[list[dict], list[bytes]]:
    """A beat through the lane whose lean answer is held; its future then gets outcome
    (None: never)."""
    body = json.dumps({"overlay": {}, "instances": {}, "running_vms": 0}).encode()
    scope = {"type": "http", "method": "POST", "path": "/cluster/v1/nodes/n0/heartbeat",
             "headers": [], "client": ("10.0.0.9", 1),
             "extensions": {"tls": {"client_cert_chain": [b"cert"]}}}
    future: Future[bool] = Future()
    held = Held(7, future, {"revision": 7, "state": "up", "ordered": True})
    monkeypatch.setattr(heartbeat_lane, "lean", lambda *args, **kwargs: held)
    monkeypatch.setattr(heartbeat_lane, "HOLD_WAIT", 0.5)
    sent: list[dict] = []
    routed: list[bytes] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        routed.append((await receive())["body"])

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    async def main() -> None:
        task = asyncio.create_task(HeartbeatLane(app, object())(scope, receive, send))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert not sent and not routed  # waiting for the flush
        if outcome is not None:  # the flush thread ends
            threading.Thread(target=future.set_result, args=(outcome,)).start()
        await task

    asyncio.run(main())
    return sent, routed


def test_the_lane_answers_a_held_beat_once_written(monkeypatch: pytest.MonkeyPatch) -> None:
    sent, routed = _lane(True, monkeypatch)
    assert not routed and sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == {"revision": 7, "state": "up", "ordered": True}


def test_the_lane_sends_a_held_beat_not_written_to_the_route(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for outcome in (False, None):  # not written; not within HOLD_WAIT
        sent, routed = _lane(outcome, monkeypatch)
        assert not sent and len(routed) == 1
