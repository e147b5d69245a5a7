"""Logs show changes, not beats: routine agent calls and repeated retries stay out of INFO."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from atwill.controller.middleware import RequestContext

NODE = "/cluster/v1/nodes/0b8f6a5e-0f1c-4a55-9c53-2f7d8f8e7e11"


def request(path: str, status: int, method: str = "POST") -> None:
    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(RequestContext(app, max_body=1024)(scope, receive, send))


def info_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "atwill.access" and r.levelno >= logging.INFO]


@pytest.mark.parametrize(("method", "path"), [
    ("POST", f"{NODE}/heartbeat"),
    ("GET", f"{NODE}/desired"),
    ("PUT", f"{NODE}/instances/5d2d1f0e-6a53-4a4e-a8a5-3d54a1e1d0aa/console"),
])
def test_a_routine_agent_call_is_debug_only(caplog: pytest.LogCaptureFixture, method: str,
                                            path: str) -> None:
    caplog.set_level(logging.DEBUG, logger="atwill.access")
    request(path, 200, method)
    assert info_lines(caplog) == []
    assert any(path in r.getMessage() for r in caplog.records)  # still there at DEBUG


@pytest.mark.parametrize("status", [403, 500])
def test_a_failed_heartbeat_is_info(caplog: pytest.LogCaptureFixture, status: int) -> None:
    caplog.set_level(logging.DEBUG, logger="atwill.access")
    request(f"{NODE}/heartbeat", status)
    [line] = info_lines(caplog)
    assert f"POST {NODE}/heartbeat {status}" in line


def test_other_requests_are_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="atwill.access")
    request(f"{NODE}/leave", 200)
    request("/compute/v2.1/servers", 202)
    assert len(info_lines(caplog)) == 2


class Instant:
    """A stop event whose waits return at once, so backoffs cost no time."""

    def __init__(self) -> None:
        self.stopped = False

    def is_set(self) -> bool:
        return self.stopped

    def set(self) -> None:
        self.stopped = True

    def wait(self, timeout: float | None = None) -> bool:
        return self.stopped


def test_an_agent_retrying_the_same_failure_warns_once(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    import httpx

    from atwill.agent import daemon

    monkeypatch.setattr(daemon, "tls_context", lambda *args: None)
    monkeypatch.setattr(daemon, "client", lambda *args, **kw: contextlib.nullcontext())
    agent = object.__new__(daemon.Agent)
    agent.config = SimpleNamespace(ca=None, cert=None, key=None, controller_url="x",
                                   controller_urls=["x"])
    agent.stopping = Instant()
    outcomes = [httpx.ConnectError("refused")] * 5 + [None, httpx.ConnectError("refused"),
                                                       None, "stop"]

    def step(http) -> None:
        outcome = outcomes.pop(0)
        if outcome == "stop":
            agent.stopping.set()
        elif outcome is not None:
            raise outcome

    caplog.set_level(logging.DEBUG, logger="atwill.agent")
    agent._loop(step)
    # Each line's gist: after the thread name, before "; retrying…" or "(N s after…)".
    said = [(r.levelname, r.getMessage().split(";")[0].split(": ", 1)[1].split(" (")[0])
            for r in caplog.records if r.levelno >= logging.INFO]
    assert said == [("WARNING", "refused"), ("INFO", "the controller answers again"),
                    ("WARNING", "refused"), ("INFO", "the controller answers again")]
