"""The agent's side of a graceful restart: on SIGTERM it tells a (stand-in) controller that
it restarts, and its lease (the keeper, the next agent) holds until the notice's deadline."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.agent import daemon
from atwill.agent import restart_notice as agent_notice
from atwill.agent.config import AgentConfig
from atwill.agent.lease import Lease


class StandIn(http.server.ThreadingHTTPServer):
    """Records each POST (path, JSON body); answers with `status`."""

    status = 200
    posts: list[tuple[str, dict]]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: StandIn

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.server.posts.append((self.path, body))
        answer = json.dumps({"error": {"message": "no"}} if self.server.status >= 400
                            else {"until": "x"}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def controller(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    server = StandIn(("127.0.0.1", 0), _Handler)
    server.posts = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    # The stand-in speaks plain HTTP: no node certificate to load.
    monkeypatch.setattr(agent_notice, "tls_context", lambda *a: False)
    monkeypatch.delenv(agent_notice.ENV, raising=False)
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def config(tmp_path: Path, server: StandIn) -> AgentConfig:
    return AgentConfig(state_dir=tmp_path, controller_url=f"http://127.0.0.1:"
                       f"{server.server_port}", node_id="n1", name="node1")


def test_the_notice_is_sent_and_its_deadline_returned(tmp_path: Path,
                                                      controller: StandIn) -> None:
    cfg = config(tmp_path, controller)
    before = time.monotonic()
    until = agent_notice.give(cfg, agent_notice.configured(cfg))
    assert controller.posts == [("/cluster/v1/nodes/n1/restart-notice",
                                 {"seconds": 60.0, "reason": "agent restarting"})]
    assert until is not None and before + 60 <= until <= time.monotonic() + 60
    controller.status = 409  # refused (a down node): no notice, no extension
    assert agent_notice.give(cfg, 60) is None
    assert agent_notice.give(cfg, 0) is None and len(controller.posts) == 2


def test_n_is_configurable_and_bounded(tmp_path: Path, controller: StandIn,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path, controller)
    cfg.restart_notice = 120
    assert agent_notice.configured(cfg) == 120
    monkeypatch.setenv(agent_notice.ENV, "5000")
    assert agent_notice.configured(cfg) == 600
    monkeypatch.setenv(agent_notice.ENV, "0")
    assert agent_notice.configured(cfg) == 0
    monkeypatch.setenv(agent_notice.ENV, "soon")
    assert agent_notice.configured(cfg) == 120
    cfg.save()
    assert AgentConfig.load(tmp_path).restart_notice == 120


def test_sigterm_sends_the_notice_and_holds_the_lease(tmp_path: Path, controller: StandIn,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(agent_notice.ENV, "42")
    agent = daemon.Agent(config(tmp_path, controller))
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        assert agent.run() == 0
    finally:
        timer.cancel()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert controller.posts == [("/cluster/v1/nodes/n1/restart-notice",
                                 {"seconds": 42.0, "reason": "agent restarting",
                                  "agent_run": agent.run_id})]
    kept = json.loads((tmp_path / "lease.json").read_text())
    assert kept["notice_until"] == pytest.approx(time.monotonic() + 42, abs=5)


@pytest.fixture
def qemu() -> Iterator[subprocess.Popen]:
    """A stand-in QEMU whose command line names its instance, as the keeper checks."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "vm-ha"])
    yield proc
    proc.kill()
    proc.wait()


def test_the_keeper_and_the_next_agent_count_the_lease_from_the_deadline(
        tmp_path: Path, qemu: subprocess.Popen) -> None:
    lease = Lease(tmp_path, None, {"vm-ha": qemu.pid}.get)  # type: ignore[arg-type]
    lease.configure({"lease": 0.5, "protected": ["vm-ha"]})
    now = time.monotonic()
    lease.renewed(now - 5.0)  # the lease alone ran out long ago
    lease.hand_over(now + 0.8)
    # The next agent counts the lease from its own start (not from 5 s ago).
    assert Lease(tmp_path, None, None)._load() == pytest.approx(time.monotonic(), abs=0.5)  # type: ignore[arg-type]  # noqa: SLF001
    time.sleep(0.5)
    assert qemu.poll() is None  # still within the notice: the keeper waits
    assert qemu.wait(5) == -signal.SIGKILL  # killed at the deadline + lease


def test_the_keeper_ends_once_its_qemus_are_gone(tmp_path: Path) -> None:
    """Stopped or deleted meanwhile (as by `atwill down`): nothing is left to kill, and a
    keeper waiting out a 60 s notice outlived the cloud (found by the host tier)."""
    from atwill.agent import lease as agent_lease

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "vm-gone"])
    (tmp_path / "lease.json").write_text('{"renewed_at": 0}')
    started = time.monotonic()
    keeper = threading.Thread(target=agent_lease.keep, args=(
        tmp_path / "lease.json", started + 60, 0.0, {"vm-gone": proc.pid}))
    keeper.start()
    try:
        time.sleep(0.3)
        assert keeper.is_alive()  # its QEMU runs: it waits
        proc.kill()
        proc.wait()
        keeper.join(5)
        assert not keeper.is_alive() and time.monotonic() - started < 5
    finally:
        proc.kill()
        proc.wait()
        keeper.join(60)
