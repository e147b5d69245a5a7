"""Heartbeat order (core/beat_order, agent/beat_sequence, agent/client.Failover): which
beat a controller applies, the agent's epoch across restarts, and an ordered beat given
up on a hung controller and sent to the next with the next sequence."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, insert, select

from atwill.agent import client as agent_client
from atwill.agent.beat_sequence import BeatSequence
from atwill.controller.cluster import liveness
from atwill.controller.db.base import Base
from atwill.controller.db.models import Node
from atwill.core import beat_order
from atwill.core.beat_order import Order
from atwill.core.errors import BadRequest
from tests.unit.http_stub import Handler, serving
from tests.unit.http_stub import url as _url


def test_a_beat_applies_only_over_an_older_one() -> None:
    assert beat_order.applies(None, Order(1, 1))
    assert beat_order.applies(Order(1, 4), Order(1, 5))
    assert beat_order.applies(Order(1, 900), Order(2, 1))  # a restarted agent's first
    assert not beat_order.applies(Order(1, 5), Order(1, 5))  # a copy
    assert not beat_order.applies(Order(1, 5), Order(1, 4))  # late
    assert not beat_order.applies(Order(2, 1), Order(1, 900))  # the previous run's, late
    assert beat_order.applies(Order(3, 3), None)  # an older agent's: as before


def test_the_header_is_parsed_strictly() -> None:
    assert beat_order.parse(None) is None
    assert beat_order.parse("3.17") == Order(3, 17) and str(Order(3, 17)) == "3.17"
    for bad in ("", "3", "3.", ".4", "0.1", "-1.2", "1.-2", "a.b", "1.2.3", " 1 . 2",
                "١.٢", f"{2**62}.1", "1." + "9" * 30):
        with pytest.raises(BadRequest):
            beat_order.parse(bad)


def test_a_new_epoch_is_above_the_kept_one_and_the_controllers() -> None:
    assert beat_order.next_epoch(None) == 1
    assert beat_order.next_epoch(4) == 5
    assert beat_order.next_epoch(4, 9) == 10
    assert beat_order.restarted_needed(Order(2, 5), Order(3, 1))
    assert not beat_order.restarted_needed(Order(2, 5), Order(2, 5))  # ours (a copy)
    assert not beat_order.restarted_needed(Order(2, 5), Order(2, 3))  # ours, answered late
    assert not beat_order.restarted_needed(Order(2, 5), None)


def test_each_agent_start_takes_the_next_epoch(tmp_path: Path) -> None:
    first = BeatSequence(tmp_path)
    assert first.next() == Order(1, 1) and first.next() == Order(1, 2)
    assert first.header() == "1.3"
    second = BeatSequence(tmp_path)  # a restart: its beats order after the first run's
    assert second.next() == Order(2, 1) > Order(1, 3)
    (tmp_path / "beat_epoch").write_text("garbage")
    assert BeatSequence(tmp_path).epoch == 1  # unreadable: stale answers move it on


def test_a_stale_answer_of_a_later_run_moves_the_epoch_past_it(tmp_path: Path) -> None:
    beats = BeatSequence(tmp_path)
    beats.next()
    assert not beats.stale("1.1") and beats.epoch == 1  # our own beat's copy
    assert not beats.stale("junk") and not beats.stale(None)
    assert beats.stale("7.40")  # the state dir went back: the controller holds run 7
    assert beats.epoch == 8 and beats.next() == Order(8, 1)
    assert BeatSequence(tmp_path).epoch == 9  # kept


def _table():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine, tables=[Node.__table__])
    return engine


def test_the_flush_write_holds_the_order_in_its_where() -> None:
    """liveness.WRITE_ORDERED: a buffered beat over a newer stored one (another
    controller's, stored after the flush read the row) changes nothing."""
    import datetime as dt

    engine = _table()
    was = dt.datetime(2026, 12, 7, 10, 0, 0)
    with engine.begin() as conn:
        conn.execute(insert(Node.__table__).values(
            id="n1", service_id="s1", name="n1", state="up", health="up", forced_down=False,
            cert_serial="c1", last_heartbeat=was, beat_epoch=1, beat_seq=9, running_vms=3,
            host_status={}, overlay_status={}, inventory={}))

    def row(seq: int, at: dt.datetime) -> dict:
        return {"b_id": "n1", "b_at": at, "b_was": was, "b_serial": "c1", "b_peak": 0.0,
                "b_host": {}, "b_overlay": {"late": seq}, "b_vms": 7, "b_epoch": 1,
                "b_seq": seq}

    with engine.begin() as conn:
        late = conn.execute(liveness.WRITE_ORDERED, [row(8, was + dt.timedelta(seconds=1))])
        assert late.rowcount == 0
        stored = conn.execute(select(Node.running_vms, Node.last_heartbeat, Node.beat_seq)
                              ).one()
        assert tuple(stored) == (3, was, 9)
        newer = conn.execute(liveness.WRITE_ORDERED, [row(10, was + dt.timedelta(seconds=1))])
        assert newer.rowcount == 1
        assert conn.execute(select(Node.running_vms, Node.beat_seq)).one() == (7, 10)


# The failover transport ---------------------------------------------------------------
class _Counted(Handler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.orders.append(self.headers.get(beat_order.HEADER))  # type: ignore
        time.sleep(self.server.delay)  # type: ignore[attr-defined]
        body = b'{"revision": 1, "state": "up", "ordered": true}'
        self.reply(body)


def _server(delay: float) -> Iterator[http.server.ThreadingHTTPServer]:
    with serving(_Counted, delay=delay, orders=[]) as server:
        yield server


@pytest.fixture
def live() -> Iterator[http.server.ThreadingHTTPServer]:
    yield from _server(0.0)


@pytest.fixture
def slow() -> Iterator[http.server.ThreadingHTTPServer]:
    yield from _server(2.0)


@pytest.fixture
def hung() -> Iterator[str]:
    """Accepts connections and never answers (a SIGSTOPped controller)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def hung_mid_answer() -> Iterator[str]:
    """Reads a request, sends the answer's head and part of its body, then nothing more
    (a controller SIGSTOPped between writing the two)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            held.append(conn)
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 64\r\n\r\n{\"revision\"")
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
    sock.close()
    thread.join(timeout=5)
    for conn in held:
        conn.close()


def _beat(urls: list[str], beats: BeatSequence) -> tuple[httpx.Response, float]:
    with agent_client.client(urls, False, timeout=40) as http:
        start = time.monotonic()
        resp = http.post("/cluster/v1/nodes/x/heartbeat", json={"a": 1},
                         headers={beat_order.HEADER: beats.header()},
                         **agent_client.beat_options(urls, beats.header))
        return resp, time.monotonic() - start


def test_an_ordered_beat_leaves_a_hung_controller_with_the_next_sequence(
        live: http.server.ThreadingHTTPServer, hung: str, tmp_path: Path) -> None:
    urls = [hung, _url(live)]
    agent_client._remember(urls, hung)
    agent_client.note_reply(urls, {"revision": 1, "state": "up", "ordered": True})
    beats = BeatSequence(tmp_path)
    resp, took = _beat(urls, beats)
    assert resp.status_code == 200
    assert agent_client.BEAT_ANSWER <= took < agent_client.BEAT_ANSWER + 1.0
    assert live.orders == ["1.2"]  # type: ignore[attr-defined] # 1.1 went to the hung one
    assert agent_client.preferred(urls) == _url(live)  # the next beats go there at once
    resp, took = _beat(urls, beats)
    assert took < agent_client.BEAT_ANSWER and live.orders[-1] == "1.3"  # type: ignore


def test_an_ordered_beat_whose_answer_stops_mid_body_goes_to_the_next(
        live: http.server.ThreadingHTTPServer, hung_mid_answer: str, tmp_path: Path) -> None:
    """The controller hung after its answer's head (CI, test_controllers_lab: the agent
    logged a read timeout and waited its interval, the node's beat 4 s old): the body's
    timeout is the hung controller's too, and the beat goes on with the next sequence."""
    urls = [hung_mid_answer, _url(live)]
    agent_client._remember(urls, hung_mid_answer)
    agent_client.note_reply(urls, {"revision": 1, "state": "up", "ordered": True})
    resp, took = _beat(urls, BeatSequence(tmp_path))
    assert resp.status_code == 200 and resp.json()["ordered"] is True
    assert agent_client.BEAT_ANSWER <= took < agent_client.BEAT_ANSWER + 1.0
    assert live.orders == ["1.2"]  # type: ignore[attr-defined]
    assert agent_client.preferred(urls) == _url(live)


def test_unordered_controllers_keep_the_beat_where_it_went(
        live: http.server.ThreadingHTTPServer, hung: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A reply without "ordered" (an older controller): no early timeout, no copy."""
    monkeypatch.setattr(agent_client, "BEAT_READ", 1.2)
    urls = [hung, _url(live)]
    agent_client._remember(urls, hung)
    agent_client.note_reply(urls, {"revision": 1, "state": "up"})
    assert agent_client.ORDERED not in agent_client.beat_options(
        urls, BeatSequence(tmp_path).header)["extensions"]
    with pytest.raises(httpx.ReadTimeout):
        _beat(urls, BeatSequence(tmp_path))
    assert live.orders == []  # type: ignore[attr-defined]


def test_a_slow_controller_is_waited_for_longer_at_its_next_turn(
        slow: http.server.ThreadingHTTPServer, hung: str, tmp_path: Path) -> None:
    """One slow (2 s), the other hung: each turn waits twice the one before, so the slow
    one's answer comes at its second turn (its lease renewal with it); before the
    escalation a hung controller given the last word in full time cost 40 s."""
    urls = [_url(slow), hung]
    agent_client._remember(urls, urls[0])
    agent_client.note_reply(urls, {"ordered": True})
    resp, took = _beat(urls, BeatSequence(tmp_path))
    answer = agent_client.BEAT_ANSWER
    assert resp.status_code == 200 and answer + 2 * answer + 2.0 - 0.2 <= took < 8.0
    time.sleep(0.3)
    assert slow.orders == ["1.1", "1.3"]  # type: ignore[attr-defined] # 1.2: the hung one
    assert agent_client.preferred(urls) == _url(slow)


class _Fails(httpx.BaseTransport):
    def __init__(self, error: type[httpx.TransportError]) -> None:
        self.error, self.sent = error, []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.url.port, request.headers.get(beat_order.HEADER),
                          request.extensions["timeout"]["read"]))
        if request.url.port == 1:
            raise self.error("failed")
        return httpx.Response(200)


def _failover(urls: list[str], fake: object, ordered: bool = True) -> agent_client.Failover:
    """The agent's failover transport over urls (urls[0] preferred, the controllers ordered
    or not), its requests going to fake."""
    agent_client._remember(urls, urls[0])
    agent_client.note_reply(urls, {"ordered": ordered})
    failover = agent_client.Failover(urls, False)
    failover.transport = fake  # type: ignore[assignment]
    return failover


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError,
                                   httpx.ConnectError])
def test_an_ordered_beat_goes_to_the_next_after_any_failure(
        error: type[httpx.TransportError], tmp_path: Path) -> None:
    urls = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    beats = BeatSequence(tmp_path)
    fake = _Fails(error)
    failover = _failover(urls, fake)
    with httpx.Client(base_url=urls[0], transport=failover) as http:
        assert http.post("/hb", json={}, headers={beat_order.HEADER: beats.header()},
                         **agent_client.beat_options(urls, beats.header)).status_code == 200
    answer = agent_client.BEAT_ANSWER
    assert fake.sent == [(1, "1.1", answer), (2, "1.2", 2 * answer)]


class _Refuses(httpx.BaseTransport):
    def __init__(self) -> None:
        self.sent: list[int | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.url.port)
        raise httpx.ConnectError("refused")


def test_every_controller_refusing_ends_the_beat_after_one_turn(tmp_path: Path) -> None:
    """None hung (all refuse or cut): nothing to wait longer for, no second cycle."""
    urls = ["http://127.0.0.1:1", "http://127.0.0.1:3"]
    beats = BeatSequence(tmp_path)
    fake = _Refuses()
    failover = _failover(urls, fake)
    with httpx.Client(base_url=urls[0], transport=failover) as http, \
            pytest.raises(httpx.ConnectError):
        http.post("/hb", json={}, headers={beat_order.HEADER: beats.header()},
                  **agent_client.beat_options(urls, beats.header))
    assert fake.sent == [1, 3]


def test_an_ordered_beat_s_turns_escalate_to_the_full_wait() -> None:
    plan = agent_client._escalating(["a", "b"], 40.0)
    assert [u for u, _ in plan] == ["a", "b", "a", "b", "a", "b", "a"]
    assert [r for _, r in plan] == [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 40.0]


# The agent's heartbeat ---------------------------------------------------------------
class _Answers:
    """An http client whose heartbeat answers are given in turn; the orders it was sent."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers, self.orders = list(answers), []

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        self.orders.append(kwargs["headers"][beat_order.HEADER])  # type: ignore[index]
        answer = self.answers.pop(0)
        answer.request = httpx.Request(method, "https://c:1" + path)
        return answer


def _stale(held: str) -> httpx.Response:
    return httpx.Response(409, headers={beat_order.HEADER: held}, json={"error": {
        "code": 409, "title": "Conflict", "message": "older", "type": "heartbeat_stale"}})


def test_the_agent_renews_no_lease_from_a_stale_answer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = _agent(tmp_path, monkeypatch)
    http = _Answers(_stale("1.1"), _stale("4.2"),
                    httpx.Response(200, json={"revision": 1, "state": "up", "ordered": True}))
    agent._beat(http)  # type: ignore[arg-type] # a copy of ours: nothing renewed
    assert agent.lease.renewed_at is None and agent.beats.epoch == 1
    agent._beat(http)  # type: ignore[arg-type] # a later run's: a new epoch above it
    assert agent.lease.renewed_at is None and agent.beats.epoch == 5
    agent._beat(http)  # type: ignore[arg-type]
    assert agent.lease.renewed_at is not None
    assert http.orders == ["1.1", "1.2", "5.1"]
    assert agent_client.ordering(["https://c:1"])


# The review's attacks (session 15) ------------------------------------------------------
def test_a_reused_epoch_moves_on_past_a_higher_held_seq() -> None:
    """HIGH 1: the epoch file not written, restored one run old, or wiped after a first
    run: the controller holds (E, N) from the earlier run while this run sends (E, 1),
    (E, 2)... Before, only a later held epoch moved the agent on (hours of 409s)."""
    assert beat_order.restarted_needed(Order(2, 5), Order(2, 900))  # same epoch, higher seq
    assert beat_order.restarted_needed(Order(2, 5), Order(3, 1))  # adjacent epoch
    assert not beat_order.restarted_needed(Order(2, 5), Order(2, 5))  # our own beat's copy
    assert not beat_order.restarted_needed(Order(2, 5), Order(2, 4))  # a late answer
    assert not beat_order.restarted_needed(Order(2, 5), Order(1, 900))


def test_an_agent_whose_epoch_file_cannot_be_written_moves_on(tmp_path: Path) -> None:
    (tmp_path / "beat_epoch").write_text("3\n")
    beats = BeatSequence(tmp_path)
    assert beats.epoch == 4
    (tmp_path / "beat_epoch").write_text("3\n")  # the run before's file, put back
    again = BeatSequence(tmp_path)  # the same epoch as the run before
    assert again.next() == Order(4, 1)
    assert again.stale("4.700")  # the controller holds the earlier run's beat 700
    assert again.next() == Order(5, 1) > Order(4, 700)


def test_epochs_stop_at_the_ceiling_and_a_stored_one_there_counts_as_none(
        tmp_path: Path) -> None:
    """MEDIUM 4: a pair pushed to the limit (forged with the node's certificate, a bug)
    locked the node out for good: the agent's next epoch was beyond what parse accepts."""
    ceiling = beat_order.CEILING
    assert beat_order.next_epoch(None, beat_order.LIMIT - 1) == ceiling
    assert beat_order.next_epoch(ceiling - 1) == ceiling
    assert beat_order.parse(f"{beat_order.LIMIT - 1}.1") == Order(beat_order.LIMIT - 1, 1)
    assert beat_order.stored(beat_order.LIMIT - 1, 5) is None  # none held
    assert beat_order.applies(Order(beat_order.LIMIT - 1, 5), Order(1, 1))
    beats = BeatSequence(tmp_path)
    beats.next()
    assert beats.stale(f"{ceiling - 1}.9")  # follows, up to the ceiling
    assert beats.next() == Order(ceiling, 1) and str(beats.current()) == f"{ceiling}.1"
    assert not beats.stale(f"{beat_order.LIMIT - 1}.9")  # beyond: none held, not followed
    assert BeatSequence(tmp_path).epoch == 1  # kept at the ceiling: starts again at 1


def _node_row(conn, **values) -> None:  # noqa: ANN001
    conn.execute(insert(Node.__table__).values(**{
        "id": "n1", "service_id": "s1", "name": "n1", "state": "down", "health": "down",
        "forced_down": False, "cert_serial": "c1", "beat_epoch": 3, "beat_seq": 9,
        "running_vms": 0, "host_status": {}, "overlay_status": {}, "inventory": {},
        **values}))


def _claimed(order: Order, serial: str | None = None, **values) -> bool:  # noqa: ANN003
    import datetime as dt

    from sqlalchemy.orm import Session

    from atwill.controller.cluster.agents import claim

    engine = _table()
    fence = values.pop("fence", None)
    if fence is not None:
        values.update(fence_state=fence[0], fence_method=fence[1],
                      fenced_at=dt.datetime(2026, 12, 7, 10, 0))
    with engine.begin() as conn:
        _node_row(conn, **values)
    with Session(engine) as session:
        return claim(session, "n1", order, serial)


def test_a_node_fenced_off_comes_back_only_with_a_later_epoch() -> None:
    """HIGH 2: the newest beat of a dead node, held by a hung controller and applied after
    the node was fenced (power confirmed off), un-fenced it."""
    for method in ("ipmi", "manual"):
        assert not _claimed(Order(3, 10), fence=("ok", method))  # sent before the fence
        assert _claimed(Order(4, 1), fence=("ok", method))  # a restarted agent's
    assert _claimed(Order(3, 10), fence=("ok", "lease"))  # the host may still run
    for state in ("failed", "pending", "skipped"):  # power not confirmed off
        assert _claimed(Order(3, 10), fence=(state, None))
    assert _claimed(Order(3, 10))
    assert _claimed(Order(3, 10), fence=("ok", "ipmi"), beat_epoch=beat_order.LIMIT - 1)


def test_a_claim_with_another_certificate_changes_nothing() -> None:
    """LOW 5: the certificate is in the claim's WHERE (no lock taken for another's)."""
    assert not _claimed(Order(3, 10), "c2")
    assert _claimed(Order(3, 10), "c1")
    assert _claimed(Order(1, 1), "c1", beat_epoch=beat_order.LIMIT - 1)  # at the ceiling


def test_the_flush_write_applies_over_a_stored_epoch_at_the_ceiling() -> None:
    import datetime as dt

    engine = _table()
    was = dt.datetime(2026, 12, 7, 10, 0, 0)
    with engine.begin() as conn:
        _node_row(conn, state="up", health="up", last_heartbeat=was,
                  beat_epoch=beat_order.LIMIT - 1)
        written = conn.execute(liveness.WRITE_ORDERED, [{
            "b_id": "n1", "b_at": was + dt.timedelta(seconds=1), "b_was": was,
            "b_serial": "c1", "b_peak": 0.0, "b_host": {}, "b_overlay": {}, "b_vms": 1,
            "b_epoch": 1, "b_seq": 1}])
        assert written.rowcount == 1


# The review of the fixes (session 15, second pass) ---------------------------------------
def _fenced(held: str | None) -> httpx.Response:
    headers = {beat_order.HEADER: held} if held is not None else {}
    return httpx.Response(409, headers=headers, json={"error": {
        "code": 409, "title": "Conflict", "message": "fenced", "type": "heartbeat_fenced"}})


def _busy() -> httpx.Response:
    return httpx.Response(503, json={"error": {
        "code": 503, "title": "Service Unavailable", "message": "locked",
        "type": "heartbeat_row_busy"}})


def _agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN202
    from atwill.agent import daemon
    from atwill.agent.config import AgentConfig

    agent = daemon.Agent(AgentConfig(state_dir=tmp_path, controller_url="https://c:1",
                                     node_id="n", name="node1"))
    agent.interval = 0.01
    monkeypatch.setattr(daemon.renewal, "due", lambda _pem: False)
    agent.config.cert.parent.mkdir(parents=True, exist_ok=True)
    agent.config.cert.write_bytes(b"pem")
    monkeypatch.setattr(agent, "inventory", lambda: {"vcpus": 1})
    monkeypatch.setattr(agent, "_overlay_report", lambda: {})
    return agent


def test_a_live_agent_told_its_node_is_fenced_takes_a_new_epoch_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """HIGH 1: a live node marked fenced off (an operator's confirm of a suspect node, a
    device that said off) got 409 with the stored pair, below its own, so its agent
    never took a new epoch: refused for good while its VMs were evacuated."""
    agent = _agent(tmp_path, monkeypatch)
    ok = httpx.Response(200, json={"revision": 1, "state": "up", "ordered": True})
    http = _Answers(ok, _fenced("1.1"), httpx.Response(200, json={"ordered": True}))
    agent._beat(http)  # type: ignore[arg-type]
    start = time.monotonic()
    agent.interval = 5.0  # the refusal's new epoch is sent at once, not at the interval
    with caplog.at_level("ERROR", logger="atwill.agent"):
        agent._beat(http)  # type: ignore[arg-type]
    assert time.monotonic() - start < 1.0 and agent.beats.epoch == 2
    assert any("fenced" in r.message for r in caplog.records if r.levelname == "ERROR")
    agent.interval = 0.01
    agent._beat(http)  # type: ignore[arg-type]
    assert http.orders == ["1.1", "1.2", "2.1"]


def test_a_fenced_answer_moves_past_the_held_epoch_or_ours_without_a_header(
        tmp_path: Path) -> None:
    beats = BeatSequence(tmp_path)
    beats.next()
    assert beats.fenced("5.9") == Order(6, 1) and beats.next() == Order(6, 1)
    assert beats.fenced(None) == Order(7, 1)  # MEDIUM 3: no pair held, no header
    assert beats.fenced("junk") == Order(8, 1)
    assert BeatSequence(tmp_path).epoch == 9  # kept


def test_a_fenced_node_with_no_seq_stored_is_not_locked_out() -> None:
    """MEDIUM 3: beat_seq NULL with beat_epoch set: stored() said none held, so the
    fenced 409 carried no header and the agent could never move on."""
    assert _claimed(Order(3, 1), fence=("ok", "ipmi"), beat_seq=None)
    assert _claimed(Order(3, 1), beat_seq=None)


class _Busy(httpx.BaseTransport):
    """Port 1 (and `busy` others) answer 503 row busy; the rest 200."""

    def __init__(self, busy: tuple[int, ...] = (1,)) -> None:
        self.busy, self.sent = busy, []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.url.port, request.headers.get(beat_order.HEADER)))
        if request.url.port in self.busy:
            return _busy()
        return httpx.Response(200, json={"ordered": True})


@pytest.mark.parametrize("ordered", [True, False])
def test_a_row_busy_answer_sends_the_beat_to_the_next_controller(
        ordered: bool, tmp_path: Path) -> None:
    """MEDIUM 2: a controller hung holding the node's row made every controller answer
    503 for IDLE_TIMEOUT_MS; the agent took the 503 as an error and backed off."""
    urls = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    beats = BeatSequence(tmp_path)
    fake = _Busy()
    failover = _failover(urls, fake, ordered=ordered)
    with httpx.Client(base_url=urls[0], transport=failover) as http:
        assert http.post("/hb", json={}, headers={beat_order.HEADER: beats.header()},
                         **agent_client.beat_options(urls, beats.header)).status_code == 200
    assert fake.sent == [(1, "1.1"), (2, "1.2" if ordered else "1.1")]
    assert agent_client.preferred(urls) == urls[1]


def test_every_controller_busy_ends_the_beat_after_one_turn(tmp_path: Path) -> None:
    urls = ["http://127.0.0.1:1", "http://127.0.0.1:3"]
    beats = BeatSequence(tmp_path)
    fake = _Busy((1, 3))
    failover = _failover(urls, fake)
    with httpx.Client(base_url=urls[0], transport=failover) as http:
        resp = http.post("/hb", json={}, headers={beat_order.HEADER: beats.header()},
                         **agent_client.beat_options(urls, beats.header))
    assert resp.status_code == 503 and [port for port, _ in fake.sent] == [1, 3]
    with pytest.raises(agent_client.ClusterError) as raised:
        agent_client.check(resp)
    assert raised.value.kind == beat_order.BUSY


def test_the_agent_beats_again_at_the_interval_after_a_row_busy_answer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MEDIUM 2: a 503 went to the loop's backoff (0.5, 1, 2, 4 ... s): beats 8-9 s
    apart, past the HA down floor (2.6 s), for a controller that hung 5 s."""
    agent = _agent(tmp_path, monkeypatch)
    agent.interval = 0.2
    http = _Answers(_busy(), httpx.Response(200, json={"ordered": True}))
    start = time.monotonic()
    agent._beat(http)  # type: ignore[arg-type] # no error: the loop's backoff not used
    assert 0.15 < time.monotonic() - start < 1.0 and agent.lease.renewed_at is None
    agent._beat(http)  # type: ignore[arg-type]
    assert agent.lease.renewed_at is not None and http.orders == ["1.1", "1.2"]


def test_a_beat_transaction_idles_a_second_at_most() -> None:
    from atwill.controller.cluster import agents

    assert agents.IDLE_TIMEOUT_MS <= 1000 and agents.RowBusy.kind == beat_order.BUSY


def test_a_beat_whose_idle_transaction_was_ended_answers_row_busy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """MEDIUM 2: the server ending a stalled beat's transaction answered a 503 of no
    type (the agent backed off); nothing was applied, so it is RowBusy's (sent on)."""
    from types import SimpleNamespace

    from sqlalchemy.exc import OperationalError

    from atwill.controller.cluster import agents

    class _Ended(Exception):
        sqlstate = agents.IDLE_ENDED

    def ended(*_args: object) -> None:
        raise OperationalError("COMMIT", {}, _Ended("idle-in-transaction timeout"))

    monkeypatch.setattr(agents, "_full", ended)
    monkeypatch.setattr(agents.liveness, "enabled", lambda: False)
    monkeypatch.setattr(agents.liveness, "of", lambda _db: SimpleNamespace(
        token=lambda _node: 0))
    monkeypatch.setattr(agents.nodes, "underlay_source", lambda _s, _c: "")
    ctl = SimpleNamespace(settings=None, db=None)
    request = SimpleNamespace(client=None)
    with pytest.raises(agents.RowBusy) as raised:
        agents._heartbeat(ctl, request, "n1", None, {}, Order(1, 1))  # type: ignore[arg-type]
    assert raised.value.status == 503 and raised.value.kind == beat_order.BUSY
