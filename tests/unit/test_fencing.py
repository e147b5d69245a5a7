"""Fencing through stand-in fence agents: stdin, levels, timeouts, secrets, records."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from atwill.config import Settings
from atwill.controller.context import Controller
from atwill.controller.db.models import Base, FenceDevice, FenceEvent, Node
from atwill.controller.db.session import Database
from atwill.controller.fencing import api, devices, runner, secrets
from atwill.core.errors import BadRequest, Conflict

# A fence agent as fence-agents' are driven: key=value lines on stdin. It appends what it
# read to `record`, then behaves as `mode` says.
AGENT = """#!{python}
import sys, time
opts = dict(line.rstrip("\\n").split("=", 1) for line in sys.stdin if "=" in line)
with open(opts["record"], "a") as out:
    out.write(repr(sorted(opts.items())) + "\\n")
mode = opts.get("mode", "ok")
if mode == "hang":
    time.sleep(30)
if mode == "fail":
    print("Failed: Unable to obtain correct plug status; login with " + opts["password"])
    sys.exit(1)
if opts["action"] == "status":
    print("Status: " + opts.get("power", "ON"))
    sys.exit(2 if opts.get("power") == "OFF" else 0)
print("Success: Powered OFF")
"""


@pytest.fixture
def agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "agents"
    directory.mkdir()
    for name in ("fence_fake", "fence_other"):
        path = directory / name
        path.write_text(AGENT.format(python=sys.executable))
        path.chmod(stat.S_IRWXU)
    monkeypatch.setenv(runner.AGENT_DIR_ENV, str(directory))
    return directory


@pytest.fixture
def ctl(tmp_path: Path) -> Iterator[Controller]:
    state = tmp_path / "state"
    state.mkdir()
    db = Database(f"sqlite:///{tmp_path / 'fence.db'}")
    Base.metadata.create_all(db.engine)
    controller = Controller(settings=Settings(state_dir=state), db=db, keys=None)  # type: ignore[arg-type]
    with db.session() as session:
        session.add(Node(name="node1", state="down"))
    yield controller
    db.dispose()


def node(session) -> Node:
    return session.scalar(select(Node).where(Node.name == "node1"))


def records(tmp_path: Path) -> list[str]:
    path = tmp_path / "record"
    return path.read_text().splitlines() if path.exists() else []


def test_secrets_are_encrypted_at_rest_and_masked(ctl: Controller, tmp_path: Path) -> None:
    with ctl.db.session() as session:
        devices.set_device(ctl, session, "node1", "fence_fake",
                           {"ip": "10.0.0.9", "password": "hunter2", "api_key": "k3y"})
    key = ctl.settings.state_dir / secrets.KEY_FILE
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    raw = create_engine(f"sqlite:///{tmp_path / 'fence.db'}")
    with raw.connect() as conn:
        dump = "".join(str(row) for row in conn.exec_driver_sql("SELECT * FROM fence_devices"))
    raw.dispose()
    assert "hunter2" not in dump and "k3y" not in dump and "10.0.0.9" in dump
    with ctl.db.session() as session:
        view = devices.to_view(devices.listing(session, "node1")[0])
    assert view["options"] == {"ip": "10.0.0.9", "password": "******", "api_key": "******"}


def test_off_runs_the_agent_with_stdin_and_marks_the_node(
        ctl: Controller, agents: Path, tmp_path: Path) -> None:
    with ctl.db.session() as session:
        devices.set_device(ctl, session, "node1", "fence_fake",
                           {"record": str(tmp_path / "record"), "password": "hunter2",
                            "pcmk_host_map": "node1:7"})
        result = api.fence_node(ctl, session, node(session))
    assert result == api.FenceResult(True, "fence_fake", result.message) and result.ok
    (line,) = records(tmp_path)
    assert "('action', 'off')" in line and "('port', '7')" in line
    assert "('password', 'hunter2')" in line and "pcmk_host_map" not in line
    with ctl.db.session() as session:
        fenced = node(session)
        assert fenced.fence_state == "ok" and fenced.fenced_at is not None
        assert fenced.fence_method == "fence_fake"


def test_levels_are_tried_in_order_and_all_of_a_level_must_succeed(
        ctl: Controller, agents: Path, tmp_path: Path) -> None:
    record = str(tmp_path / "record")
    with ctl.db.session() as session:
        devices.set_device(ctl, session, "node1", "fence_fake",
                           {"record": record, "mode": "fail", "password": "hunter2"}, level=1)
        devices.set_device(ctl, session, "node1", "fence_other", {"record": record}, level=1)
        devices.set_device(ctl, session, "node1", "fence_fake", {"record": record}, level=2,
                           name="pdu")
        result = api.fence_node(ctl, session, node(session))
    assert result.ok and result.method == "pdu" and "level 2" in result.message
    assert len(records(tmp_path)) == 3  # both of level 1, then level 2
    with ctl.db.session() as session:
        failed = session.scalars(select(FenceEvent).where(FenceEvent.ok.is_(False))).all()
    assert [e.device for e in failed] == ["fence_fake"]
    # The failing agent printed the password: the record never holds it.
    assert "hunter2" not in failed[0].message and "******" in failed[0].message


def test_nothing_succeeds_nothing_is_fenced(ctl: Controller, agents: Path,
                                            tmp_path: Path) -> None:
    with ctl.db.session() as session:
        devices.set_device(ctl, session, "node1", "fence_fake",
                           {"record": str(tmp_path / "record"), "mode": "hang"}, timeout=1)
        result = api.fence_node(ctl, session, node(session))
        assert not result.ok and "timed out after 1 s" in result.message
        assert node(session).fenced_at is None and node(session).fence_state == "failed"
    with ctl.db.session() as session:
        devices.remove(session, "node1", None)
        result = api.fence_node(ctl, session, node(session))
    assert not result.ok and "no fence device" in result.message


def test_status_test_and_a_missing_agent(ctl: Controller, agents: Path,
                                         tmp_path: Path) -> None:
    with ctl.db.session() as session:
        devices.set_device(ctl, session, "node1", "fence_fake",
                           {"record": str(tmp_path / "record"), "power": "OFF"})
        devices.set_device(ctl, session, "node1", "fence_absent", {}, level=2)
        results = api.test_node(ctl, session, node(session))
        assert node(session).fenced_at is None
    assert [(r["device"], r["ok"], r["power"]) for r in results] == [
        ("fence_fake", True, "off"), ("fence_absent", False, None)]
    assert "not installed" in results[1]["message"]
    assert "('action', 'status')" in records(tmp_path)[0]


def test_confirm_is_refused_while_the_node_heartbeats(ctl: Controller) -> None:
    with ctl.db.session() as session:
        node(session).state = "up"
        with pytest.raises(Conflict):
            api.confirm(session, node(session))
        assert node(session).fenced_at is None
        node(session).state = "down"
        assert api.confirm(session, node(session)).method == "manual"
        assert node(session).fence_state == "ok" and node(session).fenced_at is not None


def test_bad_devices_change_nothing(ctl: Controller) -> None:
    with ctl.db.session() as session:
        for kwargs in ({"agent": "rm"}, {"level": 0}, {"timeout": 0},
                       {"options": {"action": "on"}}, {"name": "a b"}):
            args = {"agent": "fence_fake", "options": {}, **kwargs}
            with pytest.raises(BadRequest):
                devices.set_device(ctl, session, "node1", **args)
        assert session.scalars(select(FenceDevice)).all() == []
