"""An agent uses a changed list of controllers from its next request (agent/daemon.py
_loop): a node that joined before a second controller existed moves to the list that
names the controllers' overlay URLs first, instead of keeping its first connection's
list for as long as that controller answers."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from atwill.agent import daemon


class FakeClient:
    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *_: Any) -> None:
        return None


def test_a_new_controller_list_is_used_from_the_next_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    agent = daemon.Agent.__new__(daemon.Agent)
    agent.stopping = threading.Event()
    agent.config = SimpleNamespace(ca=None, cert=None, key=None,
                                   controller_urls=["https://ctl.example:8686"])
    made: list[list[str]] = []

    def client(urls: list[str], _context: Any, timeout: float) -> FakeClient:
        made.append(list(urls))
        return FakeClient()

    monkeypatch.setattr(daemon, "tls_context", lambda *_: None)
    monkeypatch.setattr(daemon, "client", client)
    steps = 0

    def step(_http: FakeClient) -> None:
        nonlocal steps
        steps += 1
        if steps == 2:  # a desired state named both controllers' overlay URLs
            agent.config.controller_urls = ["https://100.72.0.1:8686",
                                            "https://100.72.255.254:8686",
                                            "https://ctl.example:8686"]
        if steps == 3:  # another controller's order, nothing new: no reconnection
            agent.config.controller_urls = ["https://100.72.0.1:8686",
                                            "https://100.72.255.254:8686",
                                            "https://ctl.example:8686"][::-1]
        if steps == 5:
            agent.stopping.set()

    agent._loop(step)
    assert made == [["https://ctl.example:8686"],
                    ["https://100.72.0.1:8686", "https://100.72.255.254:8686",
                     "https://ctl.example:8686"]]
    assert steps == 5


def test_a_broken_connection_is_asked_again_at_once_of_the_others(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A heartbeat cut by a dying controller goes to the next one without waiting its
    backoff (the HA monitor counts the silence); a second failure in a row waits."""
    agent = daemon.Agent.__new__(daemon.Agent)
    agent.stopping = threading.Event()
    agent.config = SimpleNamespace(ca=None, cert=None, key=None,
                                   controller_urls=["https://a:1", "https://b:1"])
    waits: list[float] = []

    class Stopping:
        def is_set(self) -> bool:
            return len(waits) >= 2

        def wait(self, seconds: float) -> bool:
            waits.append(seconds)
            return False

    agent.stopping = Stopping()  # type: ignore[assignment]
    monkeypatch.setattr(daemon, "tls_context", lambda *_: None)
    monkeypatch.setattr(daemon, "client", lambda *_a, **_k: FakeClient())

    def step(_http: FakeClient) -> None:
        raise daemon.httpx.ReadError("connection broke")

    agent._loop(step)
    assert waits == [0.0, 0.5]
