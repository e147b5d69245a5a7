"""The agent's side of cold migration (agent/cold_migrations.py): the source uploads the
instance's disk, the destination fetches and grows it, against a fake controller."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from atwill.agent.cold_migrations import ColdMigrations, grow
from tests.unit.cold_migration_agents import agent, settle

UUID = "3f6c1b9e-0000-4000-8000-000000000001"


def _qcow2(path: Path, size: str, backing: Path | None = None) -> None:
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing is not None:
        args += ["-F", "qcow2", "-b", str(backing)]
    subprocess.run([*args, str(path), size], check=True)


def _virtual_size(path: Path) -> int:
    name = "json:" + json.dumps({"driver": "qcow2", "backing": None,
                                 "file": {"driver": "file", "filename": str(path)}})
    out = subprocess.run(["qemu-img", "info", "--output", "json", name], check=True,
                         capture_output=True, text=True).stdout
    return int(json.loads(out)["virtual-size"])


def test_grow_never_shrinks_and_ignores_a_missing_base(tmp_path: Path) -> None:
    base, disk = tmp_path / "base", tmp_path / "disk.qcow2"
    _qcow2(base, "64M")
    _qcow2(disk, "64M", base)
    base.unlink()  # on a destination the header names the source's path
    grow(disk, 2)
    assert _virtual_size(disk) == 2 << 30
    grow(disk, 1)
    assert _virtual_size(disk) == 2 << 30


class FakeController:
    def __init__(self) -> None:
        self.disks: dict[str, bytes] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_get = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.split("/")
        mid, what = parts[-2], parts[-1]
        self.calls.append((request.method, what))
        if request.method == "PUT":
            self.disks[mid] = request.read()
            return httpx.Response(204)
        if request.method == "GET":
            if self.fail_get:
                return httpx.Response(500, json={"error": {"message": "boom"}})
            return httpx.Response(200, content=self.disks[mid])
        return httpx.Response(204)


def _agent(tmp_path: Path, name: str, fake: FakeController) -> ColdMigrations:
    return agent(tmp_path, name, fake.handle)


def test_the_disk_goes_from_source_to_destination_and_grows(tmp_path: Path) -> None:
    fake = FakeController()
    source, dest = _agent(tmp_path, "a", fake), _agent(tmp_path, "b", fake)
    disk = source.driver.paths(UUID).disk
    disk.parent.mkdir(parents=True)
    _qcow2(disk, "64M")
    item = {"migration": "m1", "instance": UUID}
    source.converge({"send": [item], "receive": []})
    settle(source)
    assert fake.disks["m1"] == disk.read_bytes() and disk.exists()  # kept for a revert
    dest.converge({"send": [], "receive": [{**item, "disk_gb": 1, "local": False}]})
    settle(dest)
    received = dest.driver.paths(UUID).disk
    assert _virtual_size(received) == 1 << 30
    assert fake.calls == [("PUT", "file"), ("GET", "file"), ("POST", "received")]
    dest.converge({"send": [], "receive": [{**item, "disk_gb": 1}]})  # done once
    settle(dest)
    assert len(fake.calls) == 3
    # Reverted: the destination's copy (never started, no spec) goes when destroyed.
    dest.converge({}, destroy=[UUID])
    assert not received.parent.exists()


@pytest.mark.parametrize("local", [False, True])
def test_a_failed_receive_is_reported(tmp_path: Path, local: bool) -> None:
    fake = FakeController()
    fake.fail_get = True
    dest = _agent(tmp_path, "b", fake)
    dest.converge({"receive": [{"migration": "m2", "instance": UUID, "disk_gb": 1,
                                "local": local}]})
    settle(dest)
    assert fake.calls[-1] == ("POST", "error")
    assert not dest.driver.paths(UUID).disk.exists()
