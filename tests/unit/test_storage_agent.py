"""The agent as a storage node: its config, inventory, and when it converges the storage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from atwill.agent import autojoin, daemon, join
from atwill.agent.config import AgentConfig
from atwill.agent.storage import node
from atwill.agent.storage.exports import export_key
from atwill.agent.storage.reconcile import StorageManager
from atwill.cli.main import app


def config(tmp_path: Path, storage: Path | None) -> AgentConfig:
    cfg = AgentConfig(state_dir=tmp_path / "state", controller_url="https://c:1",
                      node_id="n1", name="stor1", storage_path=storage)
    cfg.save()
    return cfg


def test_the_storage_path_is_kept_in_agent_yaml(tmp_path: Path) -> None:
    cfg = config(tmp_path, tmp_path / "vols")
    assert AgentConfig.load(cfg.state_dir).storage_path == tmp_path / "vols"
    plain = config(tmp_path / "other", None)
    assert "storage_path" not in yaml.safe_load((plain.state_dir / "agent.yaml").read_text())
    assert AgentConfig.load(plain.state_dir).storage_path is None


def test_only_a_storage_node_reports_storage(tmp_path: Path) -> None:
    agent = daemon.Agent(config(tmp_path, tmp_path / "vols"))
    storage = agent.inventory()["storage"]
    assert storage["path"] == str(tmp_path / "vols") and storage["formats"] == ["qcow2"]
    assert storage["total_gb"] >= storage["free_gb"] >= 0
    assert agent.storage is not None and agent.storage.report() == {}
    other = daemon.Agent(config(tmp_path / "other", None))
    assert other.storage is None and "storage" not in other.inventory()


class FakeStorage:
    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], str]] = []

    def converge(self, desired: dict[str, Any], host: str) -> None:
        self.calls.append((desired, host))


@pytest.fixture
def agent(tmp_path: Path) -> daemon.Agent:
    made = daemon.Agent(config(tmp_path, tmp_path / "vols"))
    made.overlay.apply = lambda desired, verify=False: None  # type: ignore[method-assign]
    made.instances.taps = lambda wanted: None  # type: ignore[method-assign]
    made.instances.converge = lambda wanted, destroy=(): None  # type: ignore[method-assign]
    made.network.apply = lambda desired: None  # type: ignore[method-assign]
    made.storage = FakeStorage()  # type: ignore[assignment]
    return made


def test_no_storage_key_deletes_nothing(agent: daemon.Agent) -> None:
    agent.apply({"revision": 1, "instances": []})
    assert agent.storage.calls == []  # type: ignore[union-attr]


def test_storage_converges_on_the_overlay_address(agent: daemon.Agent) -> None:
    wanted = {"volumes": [{"id": "v1", "size_gb": 1}]}
    agent.apply({"revision": 2, "storage": wanted,
                 "overlay": {"kind": "wireguard", "address": "10.99.0.7"}})
    assert agent.storage.calls == [(wanted, "10.99.0.7")]  # type: ignore[union-attr]


def test_a_cached_state_serves_no_export_again(tmp_path: Path) -> None:
    manager = StorageManager(tmp_path / "vols", tmp_path / "ca", tmp_path / "c", tmp_path / "k",
                             lambda source, dest: None)
    cached = {"volumes": [{"id": "v1", "size_gb": 1, "snapshots": ["s1"],
                           "exports": [{"node_id": "a", "client_cn": "node-a"}]}]}
    assert manager.still_exported(cached) == {
        "volumes": [{"id": "v1", "size_gb": 1, "snapshots": ["s1"], "exports": []}]}
    # A storage node whose cache holds "storage": null restarted (it crashed on it).
    assert manager.still_exported(None) is None


def test_join_settings_name_the_storage(tmp_path: Path) -> None:
    env = {"ATWILL_JOIN_URL": "https://c:1", "ATWILL_JOIN_TOKEN": "t",
           "ATWILL_JOIN_CA_HASH": "sha256:x", "ATWILL_JOIN_STORAGE": "/srv/volumes"}
    settings = autojoin.JoinSettings.find(env, tmp_path / "none.env")
    assert settings is not None and settings.storage == Path("/srv/volumes")
    calls: list[dict[str, Any]] = []

    def join_once(*args: object, **kwargs: Any) -> AgentConfig:
        calls.append(kwargs)
        return config(tmp_path, Path("/srv/volumes"))

    autojoin.autojoin(settings, tmp_path / "state", join_once, lambda delay: None)
    assert calls == [{"storage": Path("/srv/volumes")}]


def test_join_refuses_a_storage_path_that_is_a_file(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(join.JoinError, match="exists and is not a directory"):
        join.join("https://c:1", "t", "sha256:x", tmp_path / "state", skip_prereqs=True,
                  storage=not_a_dir)
    assert not (tmp_path / "state").exists()


def test_atwill_join_takes_a_storage_path(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    seen: list[Path | None] = []

    def fake_join(*args: object, storage: Path | None = None) -> AgentConfig:
        seen.append(storage)
        raise join.JoinError("stop here")

    monkeypatch.setattr(join, "join", fake_join)
    runner = CliRunner()
    args = ["join", "https://c:1", "--token", "t", "--ca-hash", "h", "--state-dir",
            str(tmp_path)]
    assert runner.invoke(app, [*args, "--storage", "/srv/a"]).exit_code == 1
    assert runner.invoke(app, args, env={"ATWILL_JOIN_STORAGE": "/srv/b"}).exit_code == 1
    assert runner.invoke(app, args, env={"ATWILL_JOIN_STORAGE": ""}).exit_code == 1
    assert seen == [Path("/srv/a"), Path("/srv/b"), None]


def test_an_all_in_one_node_joined_before_becomes_a_storage_node(tmp_path: Path) -> None:
    cfg = config(tmp_path, None)
    node.make_storage_node(cfg.state_dir, tmp_path / "vols")
    assert AgentConfig.load(cfg.state_dir).storage_path == tmp_path / "vols"
    node.make_storage_node(cfg.state_dir, tmp_path / "elsewhere")  # kept once set
    assert AgentConfig.load(cfg.state_dir).storage_path == tmp_path / "vols"


def test_a_node_going_down_forgets_its_exports(tmp_path: Path) -> None:
    cfg = config(tmp_path, tmp_path / "vols")
    record = tmp_path / "vols" / ".exports" / export_key("v1", "n")
    record.mkdir(parents=True)
    (record / "export.json").write_text(json.dumps(
        {"volume_id": "v1", "node_id": "n", "client_cn": "a", "host": "127.0.0.1",
         "port": 10809}))
    node.stop_exports(cfg)
    assert not record.exists()
    node.stop_exports(config(tmp_path / "other", None))  # no storage: nothing to do


class RecordingExports:
    def __init__(self) -> None:
        self.ensured: list[str] = []

    def ensure(self, volume_id: str, node_id: str, *args: object) -> None:
        self.ensured.append(node_id)


def test_a_lane_serves_no_export_revoked_while_it_worked(tmp_path: Path) -> None:
    manager = StorageManager(tmp_path / "vols", tmp_path / "ca", tmp_path / "c", tmp_path / "k",
                             lambda source, dest: None)
    recording = RecordingExports()
    manager.exports = recording  # type: ignore[assignment]
    old = {"id": "v1", "size_gb": 1, "exports": [{"node_id": "a", "client_cn": "node-a"}]}
    manager._latest = {"v1": {**old, "exports": [{"node_id": "b", "client_cn": "node-b"}]}}
    manager._exports(old, "127.0.0.1")  # the lane began with the wish that named node a
    assert recording.ensured == ["b"]
