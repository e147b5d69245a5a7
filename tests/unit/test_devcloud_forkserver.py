"""The forked `openstack` and `atwill` CLIs answer exactly as fresh processes do."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from atwill.devcloud_forkserver import BIN, ForkServer

OSC = str(BIN / "openstack")


@pytest.fixture(scope="module")
def forks() -> Iterator[ForkServer]:
    server = ForkServer()
    try:
        yield server
    finally:
        server.close()


def both(forks: ForkServer, args: list[str], env: dict[str, str],
         program: str = OSC) -> tuple[tuple, tuple]:
    fresh = subprocess.run([program, *args], capture_output=True, text=True, env=env,
                           timeout=60)
    forked = forks.run([program, *args], env, timeout=60)
    return ((fresh.returncode, fresh.stdout, fresh.stderr),
            (forked.returncode, forked.stdout, forked.stderr))


def test_output_and_status_are_the_console_scripts(forks: ForkServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    fresh, forked = both(forks, ["--version"], env)
    assert fresh == forked and fresh[0] == 0 and "openstack" in fresh[1] + fresh[2]
    fresh, forked = both(forks, ["no-such-command"], env)
    assert fresh == forked and fresh[0] == 2 and "no-such-command" in fresh[1]


def test_each_run_gets_its_own_environment(forks: ForkServer, tmp_path: Path) -> None:
    clouds = {}
    for name in ("first", "second"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"clouds": {name: {"auth": {
            "auth_url": "http://127.0.0.1:9/identity"}}}}))
        clouds[name] = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(path))
    # A cloud is found only in the file its own run was given.
    fresh, forked = both(forks, ["--os-cloud", "second", "configuration", "show", "-f",
                                 "json"], clouds["second"])
    assert fresh == forked and fresh[0] == 0 and "127.0.0.1:9" in fresh[1]
    fresh, forked = both(forks, ["--os-cloud", "second", "configuration", "show"],
                         clouds["first"])
    assert fresh == forked and fresh[0] == 1 and "second" in fresh[2]


def test_a_hung_command_is_killed_at_its_timeout(forks: ForkServer) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/identity"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        started = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            forks.run([OSC, "--os-auth-url", url, "--os-username", "u", "--os-password",
                       "p", "--os-project-name", "p", "token", "issue"], env, timeout=1)
        assert time.monotonic() - started < 10
    # The server goes on serving.
    assert forks.run([OSC, "--version"], env, timeout=60).returncode == 0


def test_the_atwill_cli_too(tmp_path: Path) -> None:
    server = ForkServer("atwill")
    try:
        atwill = str(BIN / "atwill")
        fresh, forked = both(server, ["token", "--help"], dict(os.environ), atwill)
        assert fresh == forked and fresh[0] == 0 and "create" in fresh[1]
        missing = ["token", "list", "--state-dir", str(tmp_path / "none")]
        fresh, forked = both(server, missing, dict(os.environ), atwill)
        assert fresh == forked and fresh[0] != 0 and fresh[1] + fresh[2]
    finally:
        server.close()
