"""The agent's client fails over between controllers (agent/client.py Failover), and
agent.yaml keeps the controllers a desired state lists (agent/config.py)."""

from __future__ import annotations

import http.server
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from atwill.agent import client as agent_client
from atwill.agent.config import AgentConfig
from atwill.devcloud import free_port
from tests.unit.http_stub import Handler, serving
from tests.unit.http_stub import url as _url


class _Answer(Handler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer()

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer()

    def _answer(self) -> None:
        body = f"{self.server.server_port} {self.headers['Host']}".encode()
        self.reply(body)


@pytest.fixture
def live() -> Iterator[str]:
    with serving(_Answer) as server:
        yield _url(server)


def _cutting(read: int, reset: bool) -> Iterator[str]:
    """A listener that reads `read` bytes of each request and closes the connection
    without an answer, with a reset (RST: SO_LINGER 0) when `reset`."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.recv(read)
            if reset:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
    sock.close()
    thread.join(timeout=5)


@pytest.fixture
def hangs_up() -> Iterator[str]:
    """Reads the request and closes without an answer (a controller killed under a
    long-poll)."""
    yield from _cutting(65536, reset=False)


def test_a_request_that_cannot_connect_goes_to_the_next_controller(live: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    urls = [dead, live]
    with agent_client.client(urls, False) as http:
        resp = http.post("/cluster/v1/nodes/x/heartbeat", json={"a": 1})
    port = live.rsplit(":", 1)[1]
    assert resp.text == f"{port} 127.0.0.1:{port}"  # sent there, with its Host header
    assert agent_client.preferred(urls) == live
    # The next client of the same list starts with the one that answered.
    with agent_client.client(urls, False) as http:
        assert str(http.base_url).rstrip("/") == live


def test_a_get_whose_connection_broke_is_asked_again_of_the_next(
        live: str, hangs_up: str) -> None:
    with agent_client.client([hangs_up, live], False) as http:
        assert http.get("/cluster/v1/nodes/x/desired").status_code == 200


def test_a_post_whose_connection_broke_is_not_sent_twice(live: str, hangs_up: str) -> None:
    with agent_client.client([hangs_up, live], False) as http, \
            pytest.raises(httpx.RemoteProtocolError):
        http.post("/cluster/v1/nodes/x/heartbeat", json={})


def test_every_controller_down_is_the_last_error_without_a_loop() -> None:
    urls = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    with agent_client.client(urls, False) as http, pytest.raises(httpx.ConnectError):
        http.get("/")


def test_agent_yaml_keeps_the_controllers_a_desired_state_lists(tmp_path: Path) -> None:
    old = {"controller_url": "https://a:8686", "node_id": "n1", "name": "n"}
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(old))  # before the list existed
    config = AgentConfig.load(tmp_path)
    assert config.controller_urls == ["https://a:8686"]
    # (A list holding anything but https URLs is refused whole: test_agent_controller_urls.)
    config.cache_desired({"revision": 1, "controllers": ["https://a:8686/", "https://b:8686",
                                                         "https://b:8686"]})
    assert AgentConfig.load(tmp_path).controller_urls == ["https://a:8686", "https://b:8686"]
    # An answer without the list (an older controller) keeps what the node knew.
    assert not config.learn_controllers(None)
    config.cache_desired({"revision": 2})
    assert AgentConfig.load(tmp_path).controller_urls == ["https://a:8686", "https://b:8686"]


def test_after_the_last_controller_failed_the_first_is_tried_again(live: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    urls = [live, dead]
    agent_client._remember(urls, dead)  # the node had failed over to the second
    with agent_client.client(urls, False) as http:
        assert http.get("/").status_code == 200
    assert agent_client.preferred(urls) == live


@pytest.fixture
def silent() -> Iterator[str]:
    """Accepts connections and never answers (a controller that hangs, or whose machine
    is gone past a middlebox that still completes the handshake)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                held.append(sock.accept()[0])
            except OSError:
                return
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    thread.join(timeout=5)
    for conn in held:
        conn.close()


@pytest.fixture
def resets() -> Iterator[str]:
    """Reads part of the request and resets the connection, as the kernel does for a
    controller process killed mid-request."""
    yield from _cutting(16, reset=True)


class _Slow(_Answer):
    def _answer(self) -> None:
        self.server.asked += 1  # type: ignore[attr-defined]
        time.sleep(self.server.delay)  # type: ignore[attr-defined]
        super()._answer()


def _counting(delay: float) -> Iterator[http.server.ThreadingHTTPServer]:
    with serving(_Slow, delay=delay, asked=0) as server:
        yield server


@pytest.fixture
def slow() -> Iterator[http.server.ThreadingHTTPServer]:
    """A controller that answers every request 2.3 s late (more than the 2 s f5b703a
    gave a heartbeat, more than c7108a4's 0.6 s before a copy): a survivor loaded after
    a failover, a slow database."""
    yield from _counting(2.3)


@pytest.fixture
def counted() -> Iterator[http.server.ThreadingHTTPServer]:
    """A live controller that counts the requests it is sent."""
    yield from _counting(0.0)


def _beat(urls: list[str]) -> tuple[httpx.Response, float]:
    with agent_client.client(urls, False, timeout=40) as http:
        start = time.monotonic()
        resp = http.post("/cluster/v1/nodes/x/heartbeat", json={"a": 1},
                         **agent_client.beat_options(urls))
        return resp, time.monotonic() - start


@pytest.mark.parametrize("cut", ["hangs_up", "resets"])
def test_a_heartbeat_cut_by_a_dying_controller_goes_to_the_next(
        counted: http.server.ThreadingHTTPServer, cut: str,
        request: pytest.FixtureRequest) -> None:
    """A controller killed mid-request closes or resets the connection and rolls its
    transaction back: it never applies the beat later, so the beat goes to the next
    controller in the same request, once."""
    urls = [request.getfixturevalue(cut), _url(counted)]
    agent_client._remember(urls, urls[0])
    resp, _took = _beat(urls)
    assert resp.status_code == 200
    assert counted.asked == 1  # type: ignore[attr-defined]
    assert agent_client.preferred(urls) == _url(counted)


def test_a_refused_heartbeat_goes_to_the_next_in_the_same_beat(
        counted: http.server.ThreadingHTTPServer) -> None:
    urls = [f"http://127.0.0.1:{free_port()}", _url(counted)]
    agent_client._remember(urls, urls[0])
    resp, _took = _beat(urls)
    assert resp.status_code == 200 and counted.asked == 1  # type: ignore[attr-defined]


def test_a_slow_controller_gets_the_only_copy_of_a_beat(
        slow: http.server.ThreadingHTTPServer,
        counted: http.server.ThreadingHTTPServer) -> None:
    """Review of c7108a4 (HIGH): a copy sent to a second controller while the first
    still works on the beat can be applied out of order (no sequence number; a stale
    beat un-fences a powered-off node, or says a server just started is stopped). The
    slow controller's answer is waited for and nothing reaches the other one."""
    urls = [_url(slow), _url(counted)]
    agent_client._remember(urls, urls[0])
    resp, took = _beat(urls)
    assert resp.status_code == 200 and resp.text.startswith(str(slow.server_port))
    assert took >= 2.3
    time.sleep(0.3)  # a copy sent late would have arrived by now
    assert slow.asked == 1  # type: ignore[attr-defined]
    assert counted.asked == 0  # type: ignore[attr-defined]
    assert agent_client.preferred(urls) == _url(slow)


def test_a_slow_survivor_s_late_answer_is_kept(
        slow: http.server.ThreadingHTTPServer, silent: str) -> None:
    """The only live controller answers late: its answer is waited for (counted failed,
    the lease would not be renewed), after a refusal too."""
    survivor = _url(slow)
    refused = f"http://127.0.0.1:{free_port()}"
    for urls in ([survivor, silent], [survivor, refused], [refused, survivor]):
        agent_client._remember(urls, urls[0])
        resp, _took = _beat(urls)
        assert resp.status_code == 200
        assert resp.text.startswith(str(slow.server_port))
        assert agent_client.preferred(urls) == survivor
    assert slow.asked == 3  # type: ignore[attr-defined]


def test_a_heartbeat_a_hung_controller_does_not_answer_is_not_sent_elsewhere(
        counted: http.server.ThreadingHTTPServer, silent: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A controller that accepted the beat and did not answer may still apply it, late:
    the beat fails with its read timeout (40 s, shortened here) and no copy goes to the
    next controller (docs/controllers.md: not failed over inside the HA window)."""
    monkeypatch.setattr(agent_client, "BEAT_READ", 0.8)
    urls = [silent, _url(counted)]
    agent_client._remember(urls, silent)
    with pytest.raises(httpx.ReadTimeout):
        _beat(urls)
    time.sleep(0.3)
    assert counted.asked == 0  # type: ignore[attr-defined]
    assert agent_client.preferred(urls) == silent  # the next beat goes there again


class _Fails(httpx.BaseTransport):
    """What the failover transport sends where: the first controller fails with error."""

    def __init__(self, error: type[httpx.TransportError]) -> None:
        self.error, self.sent = error, []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.url.port)
        if request.url.port == 1:
            raise self.error("failed")
        return httpx.Response(200)


@pytest.mark.parametrize(("error", "next_one"), [
    (httpx.ConnectError, True), (httpx.ConnectTimeout, True),
    (httpx.RemoteProtocolError, True), (httpx.ReadError, True), (httpx.WriteError, True),
    (httpx.ReadTimeout, False), (httpx.WriteTimeout, False)])
def test_which_failures_send_a_heartbeat_to_the_next(
        error: type[httpx.TransportError], next_one: bool) -> None:
    urls = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    agent_client._remember(urls, urls[0])
    fake = _Fails(error)
    failover = agent_client.Failover(urls, False)
    failover.transport = fake  # type: ignore[assignment]
    with httpx.Client(base_url=urls[0], transport=failover) as http:
        if next_one:
            assert http.post("/hb", json={}, **agent_client.beat_options(urls)).status_code \
                == 200
            assert fake.sent == [1, 2]
        else:
            with pytest.raises(error):
                http.post("/hb", json={}, **agent_client.beat_options(urls))
            assert fake.sent == [1]
        # A GET (no side effects) goes to the next after any of them (a long-poll).
        agent_client._remember(urls, urls[0])
        fake.sent.clear()
        assert http.get("/desired").status_code == 200 and fake.sent == [1, 2]


def test_one_controller_changes_nothing() -> None:
    """One URL: no failover transport, the client's own 40 s, as before f5b703a."""
    assert agent_client.beat_options(["https://a:8686"]) == {}  # one controller: wait
    with agent_client.client(["https://a:8686"], False, timeout=40) as http:
        assert http.timeout.read == 40 and http.timeout.connect == 40
        assert not isinstance(http._transport, agent_client.Failover)
    options = agent_client.beat_options(["https://a:8686", "https://b:8686"])
    assert options == {"timeout": httpx.Timeout(40.0, connect=1.5),
                       "extensions": {agent_client.REPEATABLE: True}}
    assert not hasattr(agent_client, "HEDGED")  # no copies of a beat


def test_a_heartbeat_read_timeout_does_not_grow_the_backoff(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A controller that did not answer in time may have committed the beat: the next is
    sent at the normal interval, never after a backoff doubled to MAX_BACKOFF (committed
    beats 12 s apart would be a live node judged down and fenced)."""
    from types import SimpleNamespace

    from atwill.agent import daemon

    agent = daemon.Agent.__new__(daemon.Agent)
    agent.interval = 1.0
    agent.config = SimpleNamespace(ca=None, cert=None, key=None,
                                   controller_urls=["https://a:1", "https://b:1"])
    waits: list[float] = []

    class Stopping:
        def is_set(self) -> bool:
            return len(waits) >= 6

        def wait(self, seconds: float) -> bool:
            waits.append(seconds)
            return False

    class FakeClient:
        def __enter__(self) -> FakeClient:
            return self

        def __exit__(self, *_: object) -> None:
            return None

    agent.stopping = Stopping()  # type: ignore[assignment]
    monkeypatch.setattr(daemon, "tls_context", lambda *_: None)
    monkeypatch.setattr(daemon, "client", lambda *_a, **_k: FakeClient())

    def step(_http: FakeClient) -> None:
        raise httpx.ReadTimeout("timed out")

    agent._loop(step)
    assert waits == [1.0] * 6
