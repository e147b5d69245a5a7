"""Autojoin: join settings from the environment or a file, retries with backoff."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atwill.agent import autojoin
from atwill.agent.autojoin import JoinSettings, SettingsError
from atwill.agent.join import JoinError

BIN = Path(sys.executable).parent
GOOD = {"ATWILL_JOIN_URL": "https://10.1.2.3:8686", "ATWILL_JOIN_TOKEN": "tok",
        "ATWILL_JOIN_CA_HASH": "sha256:ab"}


def test_env_file_reads_as_systemd_does(tmp_path: Path) -> None:
    path = tmp_path / "join.env"
    path.write_text("# comment\n\nATWILL_JOIN_URL=https://c:8686\nexport ATWILL_JOIN_TOKEN='t'\n"
                    'ATWILL_JOIN_CA_HASH = "sha256:00"\n; other comment\n')
    assert autojoin.read_env_file(path) == {"ATWILL_JOIN_URL": "https://c:8686",
                                            "ATWILL_JOIN_TOKEN": "t",
                                            "ATWILL_JOIN_CA_HASH": "sha256:00"}
    assert autojoin.read_env_file(tmp_path / "absent") == {}
    path.write_text("ATWILL_JOIN_URL https://c\n")
    with pytest.raises(SettingsError, match="join.env:1: expected KEY=VALUE"):
        autojoin.read_env_file(path)


def test_settings_from_the_environment_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "join.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in GOOD.items()) + "ATWILL_JOIN_NAME=n7\n")
    settings = JoinSettings.find({"ATWILL_JOIN_TOKEN": "fresh"}, path)
    assert settings == JoinSettings("https://10.1.2.3:8686", "fresh", "sha256:ab", "n7")
    assert JoinSettings.find(GOOD, tmp_path / "absent") == JoinSettings(
        "https://10.1.2.3:8686", "tok", "sha256:ab")
    assert JoinSettings.find({"ATWILL_NODE_NAME": "x"}, tmp_path / "absent") is None
    with pytest.raises(SettingsError, match="ATWILL_JOIN_TOKEN, ATWILL_JOIN_CA_HASH missing"):
        JoinSettings.find({"ATWILL_JOIN_URL": "https://c"}, tmp_path / "absent")
    with pytest.raises(SettingsError, match="not a port"):
        JoinSettings.find({**GOOD, "ATWILL_OVERLAY_PORT": "70000"}, tmp_path / "absent")


def test_backoff_grows_and_is_bounded() -> None:
    gen = autojoin.delays(2, 30)
    assert [next(gen) for _ in range(7)] == [2, 4, 8, 16, 30, 30, 30]


def test_a_failing_join_is_said_once_and_retried(caplog: pytest.LogCaptureFixture,
                                                  tmp_path: Path) -> None:
    failures = ["the join token is invalid or used up"] * 4 + ["controller unreachable"]
    calls, slept = [], []

    def join_once(*args: object) -> object:
        calls.append(args)
        if failures:
            raise JoinError(failures.pop(0))
        return type("Config", (), {"name": "n1", "node_id": "id1"})()

    settings = JoinSettings(**{"url": "https://c:8686", "token": "t", "ca_hash": "h"})
    with caplog.at_level(logging.INFO, logger="atwill.agent.autojoin"):
        config = autojoin.autojoin(settings, tmp_path, join_once, slept.append)
    assert config.name == "n1" and len(calls) == 6
    assert slept == [2, 4, 8, 16, 32]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "invalid or used up" in warnings[0] and "unreachable" in warnings[1]
    assert all("\n" not in w for w in warnings)


def test_agent_with_a_refused_join_keeps_retrying_without_traceback(tmp_path: Path) -> None:
    # Nothing listens there: every attempt fails, and the agent must neither exit (a crash
    # loop under systemd) nor print a traceback; one line says why.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATWILL_")}
    env.update(ATWILL_JOIN_URL="https://127.0.0.1:1", ATWILL_JOIN_TOKEN="x",
               ATWILL_JOIN_CA_HASH="sha256:00")
    proc = subprocess.Popen([str(BIN / "atwill"), "agent", "--state-dir", str(tmp_path / "n"),
                             "--join-config", str(tmp_path / "none.env")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        time.sleep(8)  # attempts at 0, 2 and 6 s
        assert proc.poll() is None, proc.communicate()[0]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=10)[0]
    lines = [line for line in out.splitlines() if "autojoin to https://127.0.0.1:1" in line]
    assert len(lines) == 1, out
    assert "Traceback" not in out
    assert not (tmp_path / "n" / "agent.yaml").exists()


def test_agent_without_settings_says_so_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATWILL_")}
    proc = subprocess.run([str(BIN / "atwill"), "agent", "--state-dir", str(tmp_path),
                           "--join-config", str(tmp_path / "none.env")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "no join settings" in proc.stderr and "Traceback" not in proc.stderr
