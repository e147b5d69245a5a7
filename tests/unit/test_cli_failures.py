"""The atwill command's failures: one line on stderr, exit 1, a traceback only with --debug."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from atwill import pki
from atwill.cli import controller_cmd
from atwill.cli.failures import describe
from atwill.cli.main import app


def run(*args: str, env: dict[str, str | None] | None = None):
    return CliRunner().invoke(app, list(args), env={"ATWILL_DEBUG": None, **(env or {})})


def one_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def joined_node(state_dir: Path, url: str) -> Path:
    """A node directory as 'atwill join' leaves it: agent.yaml and its certificates."""
    state_dir.mkdir()
    (state_dir / "agent.yaml").write_text(yaml.safe_dump(
        {"controller_url": url, "node_id": "n-1", "name": "n1", "overlay_port": 51820}))
    pki.create_ca(state_dir / "pki")
    pki.issue_server_cert(state_dir / "pki", ["127.0.0.1"], name="node")
    return state_dir


def test_leave_with_the_controller_down(tmp_path: Path) -> None:
    node = joined_node(tmp_path / "node", "https://127.0.0.1:1")
    line = one_line(run("leave", "--state-dir", str(node)))
    assert line.startswith("cannot reach the controller at https://127.0.0.1:1:"), line
    assert (node / "agent.yaml").exists()  # nothing cleaned when the leave did not happen


def test_leave_without_certificates(tmp_path: Path) -> None:
    node = joined_node(tmp_path / "node", "https://127.0.0.1:1")
    (node / "pki" / "node.pem").unlink()
    assert "cannot load this node's certificates" in one_line(
        run("leave", "--state-dir", str(node)))


def test_join_to_nothing(tmp_path: Path) -> None:
    line = one_line(run("join", "https://127.0.0.1:1", "--token", "x", "--ca-hash",
                        "sha256:00", "--skip-prereqs", "--state-dir", str(tmp_path / "n")))
    assert "cannot reach the controller at https://127.0.0.1:1" in line


def test_an_os_error_is_one_line() -> None:
    # /proc refuses new directories, even to root: init fails in the state directory.
    line = one_line(run("init", "--state-dir", "/proc/atwill-nope"))
    assert line == "atwill: /proc/atwill-nope: No such file or directory"


def test_an_unexpected_error_names_its_trace_file(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    def broken(conf) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(controller_cmd, "_initialise", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # so TMPDIR is read again
    line = one_line(run("init", "--state-dir", str(tmp_path / "state")))
    assert line.startswith("atwill: unexpected error: KeyError: 'surprise'; full trace in "), line
    trace = Path(line.split("full trace in ")[1].split(" ")[0])
    assert trace.parent == tmp_path and "Traceback" in trace.read_text()


@pytest.mark.parametrize("how", [["--debug"], []])
def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                   how: list[str]) -> None:
    def broken(conf) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(controller_cmd, "_initialise", broken)
    env = {} if how else {"ATWILL_DEBUG": "1"}
    result = run(*how, "init", "--state-dir", str(tmp_path / "state"), env=env)
    assert isinstance(result.exception, KeyError)  # raised on: Python prints the trace


def test_describe_names_the_unreachable_host() -> None:
    request = httpx.Request("POST", "https://ctl.example:8686/cluster/v1/nodes/x/leave")
    error = httpx.ConnectError("[Errno 111] Connection refused", request=request)
    assert describe(error) == ("cannot reach https://ctl.example:8686: "
                               "[Errno 111] Connection refused")
