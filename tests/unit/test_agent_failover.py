"""The agent's client fails over between controllers (agent/client.py Failover), and
agent.yaml keeps the controllers a desired state lists (agent/config.py)."""

from __future__ import annotations

import http.server
import socket
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


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer()

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer()

    def _answer(self) -> None:
        body = f"{self.server.server_port} {self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def live() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def hangs_up() -> Iterator[str]:
    """Accepts a connection, reads the request and closes it without an answer (a
    controller killed under a long-poll)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.close()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
    sock.close()
    thread.join(timeout=5)


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


def test_a_heartbeat_whose_connection_broke_goes_to_the_next(live: str, hangs_up: str) -> None:
    """A heartbeat is a liveness report: sent twice it says the same; cut by a dying
    controller it is sent at once to the next, inside the HA window."""
    urls = [hangs_up, live]
    with agent_client.client(urls, False) as http:
        resp = http.post("/cluster/v1/nodes/x/heartbeat", json={},
                         **agent_client.beat_options(urls))
    assert resp.status_code == 200
    assert agent_client.preferred(urls) == live


def test_an_answer_that_does_not_come_is_asked_of_the_next(live: str, silent: str) -> None:
    urls = [silent, live]
    with agent_client.client(urls, False) as http:
        assert http.get("/", timeout=0.3).status_code == 200  # a GET: asked again
    agent_client._remember(urls, silent)
    with agent_client.client(urls, False) as http:
        with pytest.raises(httpx.ReadTimeout):  # a POST may have landed: not sent twice
            http.post("/x", json={}, timeout=0.3)


class _Slow(_Answer):
    def _answer(self) -> None:
        self.server.asked += 1  # type: ignore[attr-defined]
        time.sleep(self.server.delay)  # type: ignore[attr-defined]
        super()._answer()


@pytest.fixture
def slow() -> Iterator[http.server.ThreadingHTTPServer]:
    """A controller that answers every request 2.3 s late (more than the 2 s f5b703a
    gave a heartbeat): a survivor loaded after a failover, a slow database."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.delay, server.asked = 2.3, 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _beat(urls: list[str]) -> tuple[httpx.Response, float]:
    with agent_client.client(urls, False, timeout=40) as http:
        start = time.monotonic()
        resp = http.post("/cluster/v1/nodes/x/heartbeat", json={"a": 1},
                         **agent_client.beat_options(urls))
        return resp, time.monotonic() - start


def test_a_slow_survivor_s_late_answer_is_kept(
        slow: http.server.ThreadingHTTPServer, silent: str) -> None:
    """The only live controller answers late: its answer is waited for (it commits the
    beat anyway; counted failed, the lease would not be renewed), whatever the other
    controller does (here it hangs; a copy sent there does not end the wait)."""
    survivor = f"http://127.0.0.1:{slow.server_port}"
    for urls in ([survivor, silent], [silent, survivor],
                 [survivor, f"http://127.0.0.1:{free_port()}"]):
        agent_client._remember(urls, urls[0])
        resp, _took = _beat(urls)
        assert resp.status_code == 200
        assert resp.text.startswith(str(slow.server_port))
        assert agent_client.preferred(urls) == survivor


def test_a_hung_controller_costs_a_beat_less_than_the_ha_window(
        live: str, silent: str) -> None:
    """Interval (1 s) + what the beat waits must stay under ha_down_after (2.6 s) less
    the monitor's 0.4 s grace: the hung controller is not waited for its timeout."""
    urls = [silent, live]
    agent_client._remember(urls, silent)
    resp, took = _beat(urls)
    assert resp.status_code == 200 and agent_client.preferred(urls) == live
    assert took <= 2.6 - 0.4 - 1.0
    assert agent_client.HEDGE_AFTER <= 2.6 - 0.4 - 1.0 - 0.3  # room for the answer


def test_one_slow_machine_named_twice_is_not_marked_down_nor_beaten_twice_each_time(
        slow: http.server.ThreadingHTTPServer) -> None:
    """A load balancer's name and the controller's own URL: one machine. A slow answer
    is waited for on every name; a copy goes to the other name only when the answer is
    later than twice the last one (at most HEDGE_MAX): not every beat twice."""
    urls = [f"http://localhost:{slow.server_port}", f"http://127.0.0.1:{slow.server_port}"]
    resp, _took = _beat(urls)
    assert resp.status_code == 200
    assert slow.asked == 2  # the first beat: copied after HEDGE_AFTER
    resp, took = _beat(urls)
    assert resp.status_code == 200 and took < agent_client.HEDGE_MAX
    assert slow.asked == 3  # the second: its 2.3 s was expected, no copy
    assert agent_client.hedge_delay(agent_client.preferred(urls)) >= 4.0


def test_one_controller_changes_nothing() -> None:
    """One URL: no failover transport, the client's own 40 s, no hedging."""
    assert agent_client.beat_options(["https://a:8686"]) == {}  # one controller: wait
    with agent_client.client(["https://a:8686"], False, timeout=40) as http:
        assert http.timeout.read == 40 and http.timeout.connect == 40
        assert not isinstance(http._transport, agent_client.Failover)
    options = agent_client.beat_options(["https://a:8686", "https://b:8686"])
    assert options == {"extensions": {agent_client.REPEATABLE: True,
                                      agent_client.HEDGED: True}}
    assert "timeout" not in options  # each copy keeps the client's 40 s / 5 s


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
