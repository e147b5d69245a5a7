"""Every failure of the real atwill command is one line on stderr and exit 1, no traceback.

Each case is a path a user meets without root or a lab: a name that does not exist,
a controller that is down or refuses, a port already taken, a wrong pin.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from atwill import pki
from tests.cloud import BIN, Cloud


def atwill(*args: str) -> str:
    """Run atwill, expect a clean failure, return its one line of stderr."""
    env = {k: v for k, v in os.environ.items() if k != "ATWILL_DEBUG"}
    proc = subprocess.run([str(BIN / "atwill"), *args], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 300, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    cloud = Cloud()
    try:
        cloud.init()
        cloud.start()
        yield cloud
    finally:
        cloud.destroy()


@pytest.mark.parametrize(("args", "message"), [
    (["node", "show", "nosuch"], "No node named or with id nosuch."),
    (["node", "remove", "nosuch"], "No node named or with id nosuch."),
    (["node", "disable", "nosuch"], "No node named or with id nosuch."),
    (["token", "delete", "nosuch"], "nosuch"),
    (["user", "unlock", "nosuch"], "no user 'nosuch' in domain 'default'"),
])
def test_operator_commands_on_unknown_names(cloud: Cloud, args: list[str], message: str
                                            ) -> None:
    assert message in atwill(*args, "--state-dir", str(cloud.state_dir))


def test_operator_command_outside_a_controller(tmp_path: Path) -> None:
    assert "is not an initialised controller" in atwill(
        "token", "list", "--state-dir", str(tmp_path))


def test_serve_on_a_taken_port(cloud: Cloud) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        busy = other.getsockname()[1]
        line = atwill("serve", "--state-dir", str(cloud.state_dir), "--port", str(busy))
    assert line == f"cannot listen on 127.0.0.1:{busy}: Address already in use", line


def test_join_with_a_wrong_pin_or_token(cloud: Cloud, tmp_path: Path) -> None:
    wrong_pin = atwill("join", cloud.url, "--token", "x", "--ca-hash", "sha256:00",
                       "--skip-prereqs", "--state-dir", str(tmp_path / "a"))
    assert "does not match the pinned hash" in wrong_pin
    pin = pki.ca_hash(Path(cloud.cacert).read_bytes())
    bad_token = atwill("join", cloud.url, "--token", "not-a-real-token", "--ca-hash", pin,
                       "--skip-prereqs", "--state-dir", str(tmp_path / "b"))
    assert "join token is not known" in bad_token
    assert not (tmp_path / "b" / "agent.yaml").exists()


def test_join_and_leave_with_the_controller_down(tmp_path: Path) -> None:
    down = "https://127.0.0.1:1"
    assert f"cannot reach the controller at {down}" in atwill(
        "join", down, "--token", "x", "--ca-hash", "sha256:00", "--skip-prereqs",
        "--state-dir", str(tmp_path / "new"))
    node = tmp_path / "node"
    node.mkdir()
    (node / "agent.yaml").write_text(yaml.safe_dump(
        {"controller_url": down, "node_id": "n-1", "name": "n1", "overlay_port": 51820}))
    pki.create_ca(node / "pki")
    pki.issue_server_cert(node / "pki", ["127.0.0.1"], name="node")
    assert f"cannot reach the controller at {down}" in atwill("leave", "--state-dir",
                                                                 str(node))


def test_leave_of_a_directory_that_never_joined(tmp_path: Path) -> None:
    assert "holds no joined node" in atwill("leave", "--state-dir", str(tmp_path))
