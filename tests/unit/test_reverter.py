"""The undo stack, the command wrapper, and pidfile-tracked children."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from atwill.hostlib.run import ChildProcess, HostCommandError, Reverter, run


def test_fail_undoes_in_reverse_and_survives_a_failing_undo() -> None:
    done: list[int] = []
    revert = Reverter()
    revert.add(lambda: done.append(1))
    revert.add(lambda: 1 / 0)
    revert.add(lambda: done.append(3))
    revert.fail()
    assert done == [3, 1]
    revert.fail()
    assert done == [3, 1]


def test_context_manager_reverts_only_on_exception() -> None:
    done: list[str] = []
    with pytest.raises(RuntimeError), Reverter() as revert:
        revert.add(lambda: done.append("undone"))
        raise RuntimeError("step two failed")
    assert done == ["undone"]
    with Reverter() as revert:
        revert.add(lambda: done.append("kept"))
    assert done == ["undone"]


def test_success_forgets() -> None:
    done: list[int] = []
    revert = Reverter()
    revert.add(lambda: done.append(1))
    revert.success()
    revert.fail()
    assert done == []


def test_run_reports_command_status_and_stderr() -> None:
    assert run(["echo", "hi"]).stdout == "hi\n"
    assert run(["cat"], input="x").stdout == "x"
    with pytest.raises(HostCommandError) as info:
        run(["sh", "-c", "echo bad >&2; exit 3"])
    assert info.value.returncode == 3 and info.value.stderr == "bad"
    assert info.value.command == ["sh", "-c", "echo bad >&2; exit 3"]
    assert run(["false"], check=False).returncode == 1
    with pytest.raises(HostCommandError, match="127"):
        run(["atwill-no-such-command"])
    with pytest.raises(HostCommandError, match="timed out"):
        run(["sleep", "5"], timeout=0.2)


def test_child_process_is_adopted_by_pidfile_and_stopped(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")
    child = ChildProcess(tmp_path / "x.pid", marker)
    assert child.pid() is None
    pid = child.start([sys.executable, "-c", "import time; time.sleep(30)", marker],
                      tmp_path / "x.log")
    assert child.pid() == pid
    assert ChildProcess(tmp_path / "x.pid", marker).pid() == pid  # re-adopted
    assert ChildProcess(tmp_path / "x.pid", "someone-else").pid() is None
    child.stop()
    assert child.pid() is None and not (tmp_path / "x.pid").exists()
    child.stop()
