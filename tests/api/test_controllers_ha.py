"""Two controllers of one cloud on one PostgreSQL, the second made from the first's
bundle (`atwill controller export-bundle` / `add`); a node's heartbeats and long-polls
(the agent's own loop and client) fail over when the first controller is killed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from atwill.agent import client as agent_client
from atwill.agent.client import check
from atwill.agent.config import AgentConfig
from atwill.agent.daemon import Agent
from atwill.controller.identity.token_cache import TTL
from atwill.controller.revision_signal import RECHECK
from tests.api.aggregate_nodes import JoinedNode, wait_for
from tests.cloud import BIN, Cloud
from tests.conftest import fresh_database_url

PASSPHRASE = "a passphrase for the test bundle"


@dataclass
class Pair:
    a: Cloud
    b: Cloud


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    for url in fresh_database_url("postgres"):
        a, b = Cloud(url), Cloud(url)
        try:
            a.init()
            a.configure(controller_urls=f"{a.url},{b.url}", ha_auto_evacuate=False)
            a.start()
            add_by_bundle(a, b, tmp_path_factory.mktemp("ctlbundle"))
            yield Pair(a, b)
        finally:
            a.destroy()
            b.destroy()


def add_by_bundle(a: Cloud, b: Cloud, tmp: Path) -> None:
    """Start b as another controller of a's cloud, from a's bundle (docs/controllers.md)."""
    secret = tmp / "passphrase"
    secret.write_text(PASSPHRASE)
    bundle = tmp / "cloud.bundle"
    a.atwill("controller", "export-bundle", str(bundle), "--passphrase-file", str(secret))
    b.atwill("controller", "add", "--bundle", str(bundle), "--port", str(b.port),
             "--passphrase-file", str(secret))
    b.start()


def _validate(cloud: Cloud, token: str, subject: str) -> int:
    with cloud.http(token) as client:
        return client.get("/identity/v3/auth/tokens",
                          headers={"X-Subject-Token": subject}).status_code


def test_the_second_controller_holds_the_same_keys_and_its_own_certificate(
        pair: Pair) -> None:
    # The key files, renamed once a's first start imported them into the database.
    for rel in ("fernet-keys.imported/0", "fernet-keys.imported/1", "pki/ca-key.pem",
                "admin-password"):
        assert (pair.b.state_dir / rel).read_bytes() == (pair.a.state_dir / rel).read_bytes()
        assert (pair.b.state_dir / rel).stat().st_mode & 0o077 == 0
    assert (pair.b.state_dir / "pki/controller-key.pem").read_bytes() != \
        (pair.a.state_dir / "pki/controller-key.pem").read_bytes()


def test_init_on_the_added_controller_is_refused_and_the_catalog_stays(pair: Pair) -> None:
    proc = pair.b.atwill("init", check=False)
    assert proc.returncode == 1 and "added from a bundle" in proc.stderr
    with pair.b.http(pair.b.token()) as client:
        urls = {e["url"] for e in client.get("/identity/v3/endpoints").json()["endpoints"]}
    assert urls and all(u.startswith(pair.a.url) for u in urls)


def test_a_bundle_refused_for_a_wrong_passphrase_changes_nothing(
        pair: Pair, tmp_path: Path) -> None:
    bundle, secret = tmp_path / "b.bundle", tmp_path / "pass"
    secret.write_text(PASSPHRASE)
    pair.a.atwill("controller", "export-bundle", str(bundle), "--passphrase-file", str(secret))
    assert bundle.stat().st_mode & 0o777 == 0o600
    secret.write_text("not the passphrase")
    target = tmp_path / "c"
    proc = subprocess.run([str(BIN / "atwill"), "controller", "add", "--bundle", str(bundle),
                           "--passphrase-file", str(secret), "--state-dir", str(target)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "passphrase does not open" in proc.stderr
    assert "Traceback" not in proc.stderr and not target.exists()


def test_a_token_issued_by_one_controller_validates_on_the_other(pair: Pair) -> None:
    token = pair.a.token()
    assert _validate(pair.b, token, token) == 200
    with pair.b.http(token) as client:
        assert client.get("/compute/v2.1/servers").status_code == 200


def test_a_revocation_on_one_controller_is_refused_by_the_other_within_the_ttl(
        pair: Pair) -> None:
    admin, victim = pair.a.token(), pair.b.token()
    assert _validate(pair.b, admin, victim) == 200  # now in B's cache
    with pair.a.http(admin) as client:
        resp = client.delete("/identity/v3/auth/tokens", headers={"X-Subject-Token": victim})
    assert resp.status_code == 204, resp.text
    revoked = time.monotonic()
    wait_for(lambda: _validate(pair.b, admin, victim) == 404, TTL + 2, "B refusing it")
    assert time.monotonic() - revoked <= TTL + 1


def test_a_change_through_one_controller_wakes_a_long_poll_held_on_the_other(
        pair: Pair, tmp_path: Path) -> None:
    node = JoinedNode(pair.a, tmp_path, "hawake")
    node.cloud = pair.b  # its long-polls go to B
    try:
        with node.http() as client:
            url = f"/cluster/v1/nodes/{node.id}/desired"
            revision = client.get(url, params={"wait": 0}).json()["revision"]
            with ThreadPoolExecutor(1) as pool:
                held = pool.submit(client.get, url, params={"after": revision, "wait": 15},
                                   timeout=30)
                time.sleep(0.5)  # held before the change is made
                assert not held.done()
                node.cloud = pair.a
                node.cloud.atwill("node", "disable", node.name)  # committed outside B
                changed = time.monotonic()
                answer = held.result(30)
        assert time.monotonic() - changed <= RECHECK + 1.5
        assert answer.json()["enabled"] is False and answer.json()["revision"] > revision
    finally:
        node.cloud = pair.a
        node.remove()


def _agent_loop(config: AgentConfig, step: Callable[[httpx.Client], None],
                stopping: threading.Event) -> threading.Thread:
    """The agent's own loop (Agent._loop: its client, backoff and logging) around step."""
    agent = SimpleNamespace(config=config, stopping=stopping, removed=threading.Event())
    thread = threading.Thread(target=Agent._loop, args=(agent, step), daemon=True)
    thread.start()
    return thread


def _node_config(pair: Pair, node: JoinedNode, tmp: Path) -> AgentConfig:
    state = tmp / "node"
    (state / "pki").mkdir(parents=True)
    shutil.copy(pair.a.cacert, state / "pki/ca.pem")
    shutil.copy(tmp / f"{node.name}.pem", state / "pki/node.pem")
    shutil.copy(tmp / f"{node.name}-key.pem", state / "pki/node-key.pem")
    config = AgentConfig(state_dir=state, controller_url=pair.a.url, node_id=node.id,
                         name=node.name)
    config.save()
    return config


def _state(cloud: Cloud, name: str) -> str:
    return json.loads(cloud.atwill("node", "show", name).stdout)["state"]


def test_killing_a_controller_the_node_fails_over_and_the_survivor_runs_the_loops(
        pair: Pair, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    node = JoinedNode(pair.a, tmp_path, "hactl")
    config = _node_config(pair, node, tmp_path)
    with agent_client.client(config.controller_urls, agent_client.tls_context(
            config.ca, config.cert, config.key)) as http:
        config.cache_desired(check(http.get(f"/cluster/v1/nodes/{node.id}/desired")).json())
    assert AgentConfig.load(config.state_dir).controller_urls == [pair.a.url, pair.b.url]
    token = pair.a.token()
    answered: list[str] = []

    def beat(http: httpx.Client) -> None:
        check(http.post(f"/cluster/v1/nodes/{node.id}/heartbeat",
                        json={"overlay": {}, "instances": {}}))
        answered.append(agent_client.preferred(config.controller_urls))
        stopping.wait(0.3)

    seen = {"revision": -1}

    def poll(http: httpx.Client) -> None:  # held open on A when it is killed
        seen.update(check(http.get(f"/cluster/v1/nodes/{node.id}/desired", params={
            "after": seen["revision"], "wait": 2}, timeout=10)).json())

    stopping = threading.Event()
    caplog.set_level(logging.INFO, logger="atwill.agent")
    loops = [_agent_loop(config, step, stopping) for step in (beat, poll)]
    try:
        wait_for(lambda: answered and answered[-1] == pair.a.url, 10, "beats on A")
        os.kill(pair.a.proc.pid, signal.SIGKILL)  # the controller process this test started
        pair.a.proc.wait(10)
        wait_for(lambda: answered[-1] == pair.b.url, 10, "beats on B")
        # Past the down threshold (ha_down_after 2.6 s): the node stays up, through B.
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            assert _state(pair.b, node.name) == "up"
        assert _validate(pair.b, token, token) == 200  # A's token, A gone
        stopping.set()
        for loop in loops:
            loop.join(15)
        # Silent now: only a monitor running on B marks it down.
        wait_for(lambda: _state(pair.b, node.name) == "down", 15, "B's monitor")
    finally:
        stopping.set()
        node.cloud = pair.b
        node.remove()
    said = [r for r in caplog.records if r.name == "atwill.agent"]
    assert any(f"trying {pair.b.url}" in r.getMessage() for r in said)
    assert not any(r.exc_info for r in said)  # warnings, never a traceback
