"""The agent's side of the LVM thin backend: its configuration, the backend a node picks,
what join refuses, the export's command line, and the store's undo stack.

No test here runs LVM (these machines have no device-mapper) or claims it works: the
store is given a runner that records the commands it would run, to check their order
and that a failed step removes what the steps before it made.
tests/host/test_lvm_thin.py drives real LVM where device-mapper exists.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from atwill.agent import autojoin, join
from atwill.agent.config import AgentConfig
from atwill.agent.storage import node
from atwill.agent.storage.exports import Export, daemon_argv
from atwill.agent.storage.lvm_volumes import LvmStore, pool_problem
from atwill.agent.storage.reconcile import StorageManager
from atwill.agent.storage.volumes import VolumeStore
from atwill.cli.main import app
from atwill.core.lvm import GIB, LvmNameError, ThinPool
from atwill.hostlib.run import HostCommandError

POOL = ThinPool("vg0", "thin")
NO_SCAN = ("--config", "devices/scan_lvs=0")


def config(tmp_path: Path, vg: str | None) -> AgentConfig:
    cfg = AgentConfig(state_dir=tmp_path / "state", controller_url="https://c:1",
                      node_id="n1", name="stor1", storage_path=tmp_path / "work",
                      storage_vg=vg)
    cfg.save()
    return cfg


def test_the_volume_group_is_kept_in_agent_yaml(tmp_path: Path) -> None:
    cfg = config(tmp_path, "vg0/thin")
    assert AgentConfig.load(cfg.state_dir).storage_vg == "vg0/thin"
    plain = config(tmp_path / "files", None)
    assert "storage_vg" not in (plain.state_dir / "agent.yaml").read_text()
    assert AgentConfig.load(plain.state_dir).storage_vg is None


def test_a_node_with_a_volume_group_keeps_volumes_as_lvs(tmp_path: Path) -> None:
    manager = node.storage_manager(config(tmp_path, "vg0/thin"), lambda: "https://c:1")
    assert manager is not None and isinstance(manager.store, LvmStore)
    assert manager.store.pool == POOL and manager.store.root == tmp_path / "work"
    files = node.storage_manager(config(tmp_path / "f", None), lambda: "https://c:1")
    assert files is not None and isinstance(files.store, VolumeStore)


def test_join_refuses_a_bad_volume_group_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(join.JoinError, match="--storage-vg"):
        join.join("https://c:1", "t", "sha256:x", tmp_path / "state", skip_prereqs=True,
                  storage_vg="--force/thin")
    assert not (tmp_path / "state").exists()


def test_join_says_what_an_lvm_node_lacks(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.shutil, "which",
                        lambda tool: None if tool.startswith("lv") else f"/usr/bin/{tool}")
    assert "apt install lvm2" in (node.storage_problem(tmp_path, "vg0/thin") or "")
    assert node.storage_problem(tmp_path) is None  # the file backend needs no LVM


def test_atwill_join_takes_a_volume_group(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    seen: list[Any] = []

    def fake_join(*args: object, **kwargs: Any) -> AgentConfig:
        seen.append(kwargs.get("storage_vg"))
        raise join.JoinError("stop here")

    monkeypatch.setattr(join, "join", fake_join)
    args = ["join", "https://c:1", "--token", "t", "--ca-hash", "h", "--state-dir",
            str(tmp_path)]
    runner = CliRunner()
    assert runner.invoke(app, [*args, "--storage-vg", "vg0/thin"]).exit_code == 1
    assert runner.invoke(app, args, env={"ATWILL_JOIN_STORAGE_VG": "data"}).exit_code == 1
    assert seen == ["vg0/thin", "data"]


def test_join_settings_name_the_volume_group(tmp_path: Path) -> None:
    env = {"ATWILL_JOIN_URL": "https://c:1", "ATWILL_JOIN_TOKEN": "t",
           "ATWILL_JOIN_CA_HASH": "sha256:x", "ATWILL_JOIN_STORAGE_VG": "vg0/thin"}
    settings = autojoin.JoinSettings.find(env, tmp_path / "none.env")
    assert settings is not None
    calls: list[dict[str, Any]] = []

    def join_once(*args: object, **kwargs: Any) -> AgentConfig:
        calls.append(kwargs)
        return config(tmp_path, "vg0/thin")

    autojoin.autojoin(settings, tmp_path / "state", join_once, lambda delay: None)
    assert calls == [{"storage_vg": "vg0/thin"}]


def test_an_lv_is_exported_raw_on_host_device(tmp_path: Path) -> None:
    export = Export("v1", "n2", "node-b", "127.0.0.1", 10809)
    argv = daemon_argv(export, Path("/dev/vg0/volume-v1"), tmp_path)
    blockdevs = [argv[i + 1] for i, word in enumerate(argv) if word == "--blockdev"]
    assert blockdevs == [
        "driver=host_device,node-name=file0,filename=/dev/vg0/volume-v1,cache.direct=on",
        "driver=raw,node-name=vol0,file=file0"]
    qcow2 = daemon_argv(export, tmp_path / "v1.qcow2", tmp_path)
    assert f"driver=file,node-name=file0,filename={tmp_path / 'v1.qcow2'}" in qcow2


class Recorder:
    """Records each command; answers `lvs` with the LVs made so far; fails on demand."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.lvs: dict[str, int] = {"volume-src": 2 * GIB}
        self.fail = fail
        self.untagged: set[str] = set()  # LVs of the same names that are not atwill's
        self.pool_attr = "twi-aotz--"

    def __call__(self, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        self.calls.append(argv)
        if self.fail and argv[0] == self.fail:
            raise HostCommandError(argv, 1, "failed on purpose")
        if argv[0] == "lvcreate":
            self.lvs[argv[argv.index("--name") + 1]] = 2 * GIB
        if argv[0] == "lvremove":
            self.lvs.pop(argv[-1].split("/")[1], None)
        rows = [{"lv_name": name, "vg_name": "vg0", "lv_attr": "Vwi-a-tz--",
                 "lv_size": str(size), "pool_lv": "thin", "data_percent": "0",
                 "lv_tags": "" if name in self.untagged else "atwill"}
                for name, size in self.lvs.items()]
        rows.append({"lv_name": "thin", "vg_name": "vg0", "lv_attr": self.pool_attr,
                     "lv_size": str(100 * GIB), "pool_lv": "", "data_percent": "0",
                     "lv_tags": ""})
        return subprocess.CompletedProcess(argv, 0, json.dumps({"report": [{"lv": rows}]}), "")


def _commands(recorder: Recorder) -> list[str]:
    return [argv[0] for argv in recorder.calls if argv[0] != "lvs"]


def test_a_failed_image_copy_removes_the_lv_it_made(tmp_path: Path) -> None:
    image = tmp_path / "img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(image), "1M"], check=True)
    recorder = Recorder(fail="qemu-img")
    store = LvmStore(POOL, tmp_path, recorder)
    with pytest.raises(HostCommandError):
        store.create_from_image("v1", 1, image, "raw")
    assert _commands(recorder) == ["lvcreate", "qemu-img", "lvremove"]
    assert recorder.calls[-1] == ["lvremove", "--config", "devices/scan_lvs=0", "--yes",
                                  "--force", "vg0/volume-v1"]


def test_a_failed_grow_removes_the_clone(tmp_path: Path) -> None:
    recorder = Recorder(fail="lvextend")
    with pytest.raises(HostCommandError):
        LvmStore(POOL, tmp_path, recorder).create_from_volume("v2", 5, "src")
    assert _commands(recorder) == ["lvcreate", "lvextend", "lvremove"]
    assert "volume-v2" not in recorder.lvs


def test_a_clone_smaller_than_its_source_is_refused_before_anything(tmp_path: Path) -> None:
    recorder = Recorder()
    with pytest.raises(ValueError, match="larger than the volume of 1 GiB"):
        LvmStore(POOL, tmp_path, recorder).create_from_volume("v2", 1, "src")
    assert _commands(recorder) == []


@pytest.mark.parametrize("ident", ["--yes", "-rf", "../x", "a/b", "a b", ""])
def test_an_unsafe_id_runs_no_command(tmp_path: Path, ident: str) -> None:
    recorder = Recorder()
    store = LvmStore(POOL, tmp_path, recorder)
    for call in (lambda: store.create_blank(ident, 1), lambda: store.delete_volume(ident),
                 lambda: store.take_snapshot("src", ident),
                 lambda: store.create_from_snapshot("v2", 1, ident)):
        with pytest.raises(LvmNameError):
            call()
    assert recorder.calls == []


def test_a_failing_lvs_never_breaks_the_heartbeat(tmp_path: Path) -> None:
    recorder = Recorder(fail="lvs")
    store = LvmStore(POOL, tmp_path, recorder)
    inventory = store.inventory()  # no listing yet: no room, and why
    assert (inventory["total_gb"], inventory["free_gb"], inventory["backend"]) == (0, 0, "lvm")
    assert "failed on purpose" in inventory["error"]
    manager = StorageManager(tmp_path, tmp_path / "ca", tmp_path / "c", tmp_path / "k",
                             lambda source, dest: None, store=store)
    assert manager.report() == {}
    recorder.fail = None
    assert store.volumes() == {"src"}
    recorder.fail = "lvs"  # lvs fails for a moment: its last listing stands
    assert store.volumes() == {"src"} and manager.report()["src"]["state"] == "available"


def test_an_lv_of_the_same_name_that_is_not_tagged_is_never_removed_or_cloned(
        tmp_path: Path) -> None:
    """Only LVs tagged atwill are ours: one of another tool's in a shared volume group,
    named like a volume or snapshot, is neither removed nor copied into a volume."""
    recorder = Recorder()
    recorder.lvs |= {"volume-x1": GIB, "_snapshot-s9": GIB}
    recorder.untagged |= {"volume-x1", "_snapshot-s9"}
    store = LvmStore(POOL, tmp_path, recorder)
    store.delete_volume("x1")
    store.delete_snapshot("s9")
    with pytest.raises(FileNotFoundError):
        store.create_from_volume("v2", 1, "x1")
    with pytest.raises(FileNotFoundError):
        store.create_from_snapshot("v3", 1, "s9")
    with pytest.raises(FileNotFoundError):
        store.volume_size("x1")
    assert _commands(recorder) == [] and {"volume-x1", "_snapshot-s9"} <= set(recorder.lvs)
    store.delete_volume("src")  # a tagged one is
    assert _commands(recorder) == ["lvremove"] and "volume-src" not in recorder.lvs


def test_every_command_the_store_runs_leaves_lvs_unscanned(tmp_path: Path) -> None:
    recorder = Recorder()
    store = LvmStore(POOL, tmp_path, recorder)
    store.create_blank("v1", 1)
    store.create_from_volume("v2", 3, "src")
    store.take_snapshot("v1", "s1")
    store.delete_volume("v1")
    assert store.inventory()["total_gb"] == 100
    lvm_calls = [argv for argv in recorder.calls if argv[0] in ("lvs", "lvcreate",
                                                                 "lvextend", "lvremove")]
    assert len(lvm_calls) > 5
    assert all(argv[1:3] == ["--config", "devices/scan_lvs=0"] for argv in lvm_calls)


def test_a_pool_that_does_not_zero_is_refused_at_join_and_in_the_inventory(
        tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.pool_attr = "twi-aot---"  # made with lvcreate -Zn
    problem = pool_problem(POOL, recorder)
    assert problem is not None and "does not zero new blocks" in problem
    inventory = LvmStore(POOL, tmp_path, recorder).inventory()
    assert (inventory["total_gb"], inventory["free_gb"]) == (0, 0)
    assert "does not zero new blocks" in inventory["error"]
    recorder.pool_attr = "twi-aotz--"
    assert pool_problem(POOL, recorder) is None


def test_a_file_node_given_a_volume_group_refuses_to_start(tmp_path: Path) -> None:
    cfg = config(tmp_path, "vg0/thin")
    cfg.storage_path.mkdir(parents=True)  # type: ignore[union-attr]
    (cfg.storage_path / "v1.qcow2").touch()  # type: ignore[operator]
    with pytest.raises(RuntimeError, match="keeps one backend"):
        node.storage_manager(cfg, lambda: "https://c:1")


class Exported:
    """An export that runs, for the manager's decisions on a live volume."""

    def __init__(self, calls: list[list[str]]) -> None:
        self.calls = calls

    def resize(self, export: Export, size: int) -> None:
        self.calls.append(["block_resize", str(size)])

    def backup(self, export: Export, target: Path) -> None:
        raise AssertionError("an LV is never copied through its daemon")


def test_an_exported_lv_is_snapshotted_by_lvm_and_grown_before_its_export(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    manager = StorageManager(tmp_path, tmp_path / "ca", tmp_path / "c", tmp_path / "k",
                             lambda source, dest: None, store=LvmStore(POOL, tmp_path, recorder))
    live = Export("src", "n2", "node-b", "127.0.0.1", 10809)
    monkeypatch.setattr(manager, "_live", lambda vid: live)
    monkeypatch.setattr(manager, "exports", Exported(recorder.calls))
    manager._take("src", "s1")
    manager._sizes["src"] = 2 * GIB
    manager._extend({"id": "src", "size_gb": 3})
    assert [[w for w in argv if w not in NO_SCAN][:3] for argv in recorder.calls
            if argv[0] != "lvs"] == [
        ["lvcreate", "--yes", "--snapshot"], ["lvextend", "--size", "3g"],
        ["block_resize", str(3 * GIB)]]
