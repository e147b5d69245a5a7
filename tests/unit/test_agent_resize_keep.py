"""A resize on the instance's own node keeps its disk as it was (agent/cold_migrations.py):
grown in place after a copy, put back by a revert, deleted by a confirm, each step
idempotent — with real qcow2 files made by qemu-img and a fake controller."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from atwill.agent.cold_migrations import ColdMigrations, keep, kept_path, restore
from tests.unit.cold_migration_agents import agent, settle

UUID = "3f6c1b9e-0000-4000-8000-000000000002"
MIG = "7d0c6a52-1111-4000-8000-00000000000a"


def _virtual_size(path: Path) -> int:
    name = "json:" + json.dumps({"driver": "qcow2", "backing": None,
                                 "file": {"driver": "file", "filename": str(path)}})
    out = subprocess.run(["qemu-img", "info", "--output", "json", name], check=True,
                         capture_output=True, text=True).stdout
    return int(json.loads(out)["virtual-size"])


def _reads(path: Path, pattern: int) -> bool:
    """Whether the guest reads pattern in the 4 KiB at 1 MiB (qemu-io verifies it)."""
    out = subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"read -P {pattern:#x} 1M 4k",
                          str(path)], capture_output=True, text=True)
    # A failed verification exits 1 from QEMU 7.2.22 on (0 before, with the message).
    return out.returncode == 0 and "fail" not in (out.stdout + out.stderr).lower()


def _disk(path: Path) -> None:
    """A 64 MiB qcow2 overlay whose guest wrote 0xa5 bytes at 1 MiB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xa5 1M 4k", str(path)],
                   check=True, capture_output=True)


class FakeController:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.status = 204

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path.rsplit("/", 1)[-1]))
        if self.status >= 400:
            return httpx.Response(self.status, json={"error": {"message": "nope"}})
        return httpx.Response(self.status)


def _agent(tmp_path: Path, fake: FakeController) -> ColdMigrations:
    return agent(tmp_path, "n1", fake.handle)


RECEIVE = {"receive": [{"migration": MIG, "instance": UUID, "disk_gb": 1, "local": True}]}


def test_keep_and_restore_are_atomic_and_idempotent(tmp_path: Path) -> None:
    disk = tmp_path / "disk.qcow2"
    _disk(disk)
    disk.chmod(0o640)
    original = disk.read_bytes()
    kept = kept_path(disk, MIG)
    assert kept.parent == disk.parent and kept.name == f"disk.pre-resize-{MIG}"
    assert keep(disk, kept) is True
    assert kept.read_bytes() == original and kept.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 4k", str(disk)],
                   check=True, capture_output=True)
    assert keep(disk, kept) is False  # the copy there is the original: never replaced
    assert kept.read_bytes() == original
    assert restore(disk, kept) is True
    assert disk.read_bytes() == original and not kept.exists()
    assert restore(disk, kept) is False  # put back already: nothing to do
    assert disk.read_bytes() == original


def test_kept_path_refuses_a_name_that_leaves_the_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        kept_path(tmp_path / "disk.qcow2", "../../etc/passwd")


def test_grow_keep_then_revert_puts_the_disk_back(tmp_path: Path) -> None:
    fake = FakeController()
    agent = _agent(tmp_path, fake)
    disk = agent.driver.paths(UUID).disk
    _disk(disk)
    original = disk.read_bytes()
    agent.converge(RECEIVE)
    settle(agent)
    kept = kept_path(disk, MIG)
    assert _virtual_size(disk) == 1 << 30 and kept.read_bytes() == original
    assert _reads(disk, 0xA5)  # the grown disk has the data
    assert fake.calls == [("POST", "received")]
    # VERIFY_RESIZE: the guest writes; a revert loses that, as in Nova.
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 4k", str(disk)],
                   check=True, capture_output=True)
    assert not _reads(disk, 0xA5)
    revert = {"revert_local": [{"migration": MIG, "instance": UUID}]}
    agent.converge(revert)
    settle(agent)
    assert _virtual_size(disk) == 64 << 20 and disk.read_bytes() == original
    assert _reads(disk, 0xA5) and not kept.exists()
    assert fake.calls == [("POST", "received"), ("POST", "reverted")]
    agent.converge(revert)  # done once
    settle(agent)
    assert len(fake.calls) == 2
    # An agent restarted before the controller heard it: said again, nothing restored.
    again = _agent(tmp_path, fake)
    again.converge(revert)
    settle(again)
    assert fake.calls[-1] == ("POST", "reverted") and disk.read_bytes() == original


def test_a_restart_between_keep_and_grow_keeps_the_original(tmp_path: Path) -> None:
    fake = FakeController()
    agent = _agent(tmp_path, fake)
    disk = agent.driver.paths(UUID).disk
    _disk(disk)
    original = disk.read_bytes()
    kept = kept_path(disk, MIG)
    keep(disk, kept)
    subprocess.run(["qemu-img", "resize", "-q", str(disk), "512M"], check=True)
    agent.converge(RECEIVE)  # the step again, after a restart mid-grow
    settle(agent)
    assert kept.read_bytes() == original and _virtual_size(disk) == 1 << 30


def test_confirm_deletes_the_kept_disk(tmp_path: Path) -> None:
    fake = FakeController()
    agent = _agent(tmp_path, fake)
    disk = agent.driver.paths(UUID).disk
    _disk(disk)
    agent.converge(RECEIVE)
    settle(agent)
    kept = kept_path(disk, MIG)
    other = kept_path(disk, "7d0c6a52-1111-4000-8000-00000000000b")  # a later resize's
    other.write_bytes(b"x")
    confirm = {"confirm_local": [{"migration": MIG, "instance": UUID}]}
    agent.converge(confirm)
    settle(agent)
    assert not kept.exists() and other.exists() and _virtual_size(disk) == 1 << 30
    assert fake.calls == [("POST", "received")]  # nothing to say
    again = _agent(tmp_path, fake)
    again.converge(confirm)  # again after a restart: nothing to do
    settle(again)
    gone = {"confirm_local": [{"migration": MIG, "instance": "3f6c1b9e-dead"}]}
    agent.converge(gone)  # a deleted instance: no directory made
    settle(agent)
    assert not agent.driver.paths("3f6c1b9e-dead").directory.exists()


def test_a_failed_grow_puts_the_disk_back_and_is_reported(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    fake = FakeController()
    agent = _agent(tmp_path, fake)
    disk = agent.driver.paths(UUID).disk
    _disk(disk)
    original = disk.read_bytes()

    def broken(path: Path, size_gb: int) -> None:
        path.write_bytes(b"half grown")
        raise OSError("no space left")
    monkeypatch.setattr("atwill.agent.cold_migrations.grow", broken)
    agent.converge(RECEIVE)
    settle(agent)
    assert disk.read_bytes() == original and not kept_path(disk, MIG).exists()
    assert fake.calls == [("POST", "error")]


def test_a_revert_the_controller_did_not_hear_is_retried(tmp_path: Path) -> None:
    fake = FakeController()
    fake.status = 503
    agent = _agent(tmp_path, fake)
    disk = agent.driver.paths(UUID).disk
    _disk(disk)
    revert = {"revert_local": [{"migration": MIG, "instance": UUID}]}
    agent.converge(revert)
    settle(agent)
    assert fake.calls == [("POST", "reverted")]  # never reported as the migration's error
    fake.status = 204
    agent.converge(revert)
    settle(agent)
    assert fake.calls == [("POST", "reverted")] * 2
    agent.converge(revert)
    settle(agent)
    assert len(fake.calls) == 2


def test_deleting_the_instance_takes_the_kept_disk(tmp_path: Path) -> None:
    agent = _agent(tmp_path, FakeController())
    disk = agent.driver.paths(UUID).disk
    _disk(disk)
    keep(disk, kept_path(disk, MIG))
    agent.driver.delete(UUID)
    assert not disk.parent.exists()
