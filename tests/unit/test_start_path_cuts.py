"""What a warm start no longer does on its way to ACTIVE (issue 19): a qemu-img run for
each overlay (copied from a template qemu-img made once), a `qemu-img info` of the
cached base on every start (its ctime moved by lending it to its group again each
time), the data plane's work beside the new QEMUs, and asking a just-started QEMU again
for the state its lane saw."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atwill.agent import instances
from atwill.agent.config import AgentConfig
from atwill.agent.hypervisor import confine, disks
from atwill.agent.hypervisor.spec import InstancePaths, InstanceSpec
from atwill.core import guest_ids

UUID = "5d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d"


def _base(directory: Path, name: str = "img-1") -> Path:
    base = directory / name
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    return base


def test_an_overlay_from_its_template_is_qemu_img_s_own(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    cache = tmp_path / "images"
    cache.mkdir()
    base = _base(cache)
    made = tmp_path / "made.qcow2"
    disks.create_overlay(base, made, 1)
    templates = cache / disks.TEMPLATES
    first, second = tmp_path / "first.qcow2", tmp_path / "second.qcow2"
    disks.overlay_from_template(base, first, 1, "qcow2", templates)
    runs: list[list[str]] = []
    real = disks.run
    monkeypatch.setattr(disks, "run", lambda args, **kw: (runs.append(list(args)),
                                                          real(args, **kw))[1])
    disks.overlay_from_template(base, second, 1, "qcow2", templates)
    assert runs == []  # the template and the cached info: no qemu-img at all
    assert first.read_bytes() == made.read_bytes() == second.read_bytes()
    # Another size is another template; an image too large is refused as before.
    disks.overlay_from_template(base, tmp_path / "third.qcow2", 2, "qcow2", templates)
    assert len(list(templates.iterdir())) == 2
    big = _base(cache, "img-big")
    subprocess.run(["qemu-img", "resize", "-q", str(big), "3G"], check=True)
    with pytest.raises(disks.ImageTooLargeError):
        disks.overlay_from_template(big, tmp_path / "big.qcow2", 1, "qcow2", templates)
    # The cache's gc drops the templates of the images it removes.
    disks.gc(cache, in_use={"img-big"})
    assert not base.exists() and list(templates.iterdir()) == []


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can pass through (confine lends files only there)."""
    made = Path(tempfile.mkdtemp(prefix="atwill-confine-"))
    made.chmod(0o711)
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="confine hands files to other users: root")
def test_a_lent_base_image_is_not_touched_again(open_dir: Path) -> None:
    cache, instances_dir = open_dir / "images", open_dir / "instances"
    cache.mkdir(mode=0o711)
    instances_dir.mkdir(mode=0o711)
    base = _base(cache)
    base.chmod(0o600)
    ctimes = []
    for uuid in (UUID, UUID[:-1] + "e"):
        paths = InstancePaths.under(instances_dir, open_dir / "qmp", uuid)
        paths.directory.mkdir()
        disks.create_overlay(base, paths.disk, 1)
        paths.spec.write_text("{}")
        spec = InstanceSpec(uuid=uuid, name="i", vcpus=1, memory_mb=64, disk_gb=1,
                            image_path=base)
        assert confine.confine(spec, paths, instances_dir) is not None
        stat = base.stat()
        assert guest_ids.in_block(stat.st_gid) and stat.st_mode & 0o777 == 0o640
        ctimes.append(stat.st_ctime_ns)
    # The second start left it alone: its cached `qemu-img info` still holds.
    assert ctimes[0] == ctimes[1]


def test_the_processes_scan_reads_uid_and_skips_zombies() -> None:
    found = dict(confine._processes())
    assert found[os.getpid()] == os.getuid()
    assert confine._field(b"Name:\tx\nState:\tZ (zombie)\nUid:\t5\t5\t5\t5\n", b"State") \
        == b"Z"
    assert confine._field(b"Name:\tx\nUid:\t1000\t0\t0\t0\n", b"Uid") == b"1000"
    assert confine._field(b"Name:\tx\n", b"Uid") is None


class Driver:
    def __init__(self) -> None:
        self.states: dict[str, str] = {"old": "running"}
        self.asked: list[str] = []
        self.alive: set[str] = {"old"}

    def uuids(self) -> list[str]:
        return sorted(self.states)

    def state(self, uuid: str) -> str:
        self.asked.append(uuid)
        return self.states.get(uuid, "missing")

    def pid(self, uuid: str) -> int | None:
        # The QEMUs alive; counters are not read here (the manager's sample is a stub).
        return 4242 if uuid in self.alive else None


@pytest.fixture
def manager(tmp_path: Path) -> instances.InstanceManager:
    made = instances.InstanceManager(AgentConfig(
        state_dir=tmp_path, controller_url="https://c:1", node_id="n", name="node1"))
    made.driver = Driver()  # type: ignore[assignment]
    made.metrics.sample = lambda uuid: None  # type: ignore[method-assign]
    return made


def _build(uuid: str) -> dict[str, Any]:
    return {"id": uuid, "power": "running", "building": True, "reboot_serial": 0,
            "rebuild_serial": 0, "image": {"id": "img-1"}}


def test_the_data_plane_waits_for_a_new_qemu_not_for_a_fetch(
        manager: instances.InstanceManager) -> None:
    release, entered = threading.Event(), threading.Event()

    def create(inst: dict[str, Any]) -> None:
        entered.set()
        release.wait(5)
        manager.driver.states[inst["id"]] = "running"  # type: ignore[attr-defined]

    manager._create = create  # type: ignore[method-assign]
    manager.converge([_build("new"), {**_build("old"), "building": False}])
    assert entered.wait(5)
    assert not manager.wait_launches(0.05)  # its QEMU is on its way
    release.set()
    assert manager.wait_launches(5)
    # An image that is not cached yet is fetched first: nothing waits for that.
    fetching, fetched = threading.Event(), threading.Event()

    def image(image: dict[str, Any]) -> Path:
        fetching.set()
        fetched.wait(5)
        raise RuntimeError("no image")

    manager._image = image  # type: ignore[method-assign]
    del manager._create  # the real one: its spec asks for the image
    manager.converge([_build("fetched")])
    assert fetching.wait(5)
    assert manager.wait_launches(0.5)
    fetched.set()
    assert manager.lanes.wait(5)


def test_a_fresh_start_is_reported_running_without_asking_qemu(
        manager: instances.InstanceManager) -> None:
    driver = manager.driver
    driver.states["new"] = "running"  # type: ignore[attr-defined]
    driver.alive.add("new")  # type: ignore[attr-defined]
    manager._started["new"] = instances.time.monotonic()
    report = manager.report()
    assert report["new"]["state"] == "running" and "metrics" not in report["new"]
    assert driver.asked == ["old"]  # type: ignore[attr-defined]
    manager.report()  # once: the next beat asks as always
    assert sorted(driver.asked) == ["new", "old", "old"]  # type: ignore[attr-defined]


def test_a_fresh_start_whose_qemu_died_is_asked_not_reported_running(
        manager: instances.InstanceManager) -> None:
    """Review of eb0c369: a QEMU that died within a second of its start was reported
    running (ACTIVE) from its lane's word; only a live QEMU process keeps the shortcut.
    Failed before: "dead" was reported running."""
    driver = manager.driver
    driver.states["dead"] = "shutoff"  # type: ignore[attr-defined]
    manager._started["dead"] = instances.time.monotonic()
    report = manager.report()
    assert report["dead"]["state"] == "shutoff"
    assert "dead" in driver.asked  # type: ignore[attr-defined]


def _events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    fsync, replace = os.fsync, Path.replace

    def synced(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def renamed(self: Path, target: Any) -> Path:
        events.append(("rename", str(self)))
        return replace(self, target)

    monkeypatch.setattr(disks.os, "fsync", synced)
    monkeypatch.setattr(Path, "replace", renamed)
    return events


def test_a_template_is_on_disk_before_its_name_and_a_damaged_one_is_made_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review of eb0c369: a template renamed before it was on the disk could be cut short
    by a power loss, and every start of its image then copied the broken file. It is
    fsynced before the rename, and checked (qcow2 header, size, backing file, tables
    inside the file) before each copy: a damaged one is made again.
    Failed before: no fsync; the truncated template was copied."""
    cache = tmp_path / "images"
    cache.mkdir()
    base = _base(cache)
    templates = cache / disks.TEMPLATES
    made = tmp_path / "made.qcow2"
    disks.create_overlay(base, made, 1)
    events = _events(monkeypatch)
    disks.overlay_from_template(base, tmp_path / "a.qcow2", 1, "qcow2", templates)
    (template,) = templates.iterdir()
    partial = [path for kind, path in events if kind == "rename"]
    assert len(partial) == 1 and events.index(("fsync", partial[0])) < \
        events.index(("rename", partial[0]))
    assert disks.template_ok(template, 1 << 30, str(base.resolve()))
    assert not disks.template_ok(template, 2 << 30, str(base.resolve()))
    assert not disks.template_ok(template, 1 << 30, "/elsewhere")
    whole = template.read_bytes()
    for cut in (0, 100, 65536, len(whole) - 1):
        template.write_bytes(whole[:cut])
        assert not disks.template_ok(template, 1 << 30, str(base.resolve()))
        copy = tmp_path / f"cut{cut}.qcow2"
        disks.overlay_from_template(base, copy, 1, "qcow2", templates)
        assert copy.read_bytes() == made.read_bytes() == template.read_bytes()

