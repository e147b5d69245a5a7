"""The node reads an image's virtual size itself: a small qcow2 can describe a disk of
terabytes, and the image service's (or a peer's) metadata may not say so. A volume or a
flavor's root disk is never grown past what was asked (and billed) to hold it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from atwill.agent.hypervisor import disks
from atwill.agent.storage.reconcile import StorageManager
from atwill.agent.storage.volumes import GIB, VolumeStore

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")


def qcow2(path: Path, size: str) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


def virtual(path: Path) -> int:
    return VolumeStore(path.parent).size_bytes(path)


def test_a_volume_is_not_made_from_an_image_larger_than_it(tmp_path: Path) -> None:
    bomb = qcow2(tmp_path / "bomb", "10T")
    assert bomb.stat().st_size < 1 << 20  # a small file, a 10 TiB disk
    store = VolumeStore(tmp_path / "vols")
    store.prepare()
    with pytest.raises(disks.ImageTooLargeError, match="larger than the volume of 1 GiB"):
        store.create_from_image("v1", 1, bomb, "qcow2")
    assert store.volumes() == set()
    assert sorted(p.name for p in store.root.iterdir()) == ["snapshots"]  # no partial left

    fits = qcow2(tmp_path / "fits", "1G")
    store.create_from_image("v2", 1, fits, "qcow2")
    store.create_from_image("v3", 3, fits, "qcow2")
    assert (virtual(store.volume("v2")), virtual(store.volume("v3"))) == (GIB, 3 * GIB)


def test_a_copy_is_never_larger_than_the_volume_asked_for(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path / "vols")
    store.prepare()
    store.create_blank("big", 5)
    with pytest.raises(disks.ImageTooLargeError, match="larger than the volume of 2 GiB"):
        store.create_from_volume("small", 2, "big")
    assert store.volumes() == {"big"}


def test_the_storage_node_reports_the_volume_in_error_with_the_reason(
        tmp_path: Path) -> None:
    bomb = qcow2(tmp_path / "bomb", "10T")

    def fetch(source: dict[str, Any], dest: Path) -> None:
        shutil.copyfile(bomb, dest)

    manager = StorageManager(tmp_path / "vols", tmp_path / "ca", tmp_path / "c",
                             tmp_path / "k", fetch)
    volume = {"id": "vol-1", "size_gb": 1, "snapshots": [], "exports": [],
              "source": {"type": "image", "id": "img-1", "disk_format": "qcow2"}}
    manager.converge({"volumes": [volume]}, "127.0.0.1")
    assert manager.wait(60)
    report = manager.report()["vol-1"]
    assert report["state"] == "error", report
    assert "virtual size is 10995116277760 bytes" in report["error"]
    assert "larger than the volume of 1 GiB" in report["error"]
    assert manager.store.volumes() == set()
    manager.converge({"volumes": []}, "127.0.0.1")  # deleted: nothing kept
    assert manager.wait(60)
    assert manager.report() == {}


def test_a_root_disk_is_not_grown_past_its_flavor(tmp_path: Path) -> None:
    bomb = qcow2(tmp_path / "bomb", "10T")
    with pytest.raises(disks.ImageTooLargeError,
                       match="larger than the flavor's root disk of 1 GiB"):
        disks.create_overlay(bomb, tmp_path / "disk", 1)
    assert not (tmp_path / "disk").exists()

    base = qcow2(tmp_path / "base", "1G")
    disks.create_overlay(base, tmp_path / "same", 1)
    disks.create_overlay(base, tmp_path / "grown", 2)
    disks.create_overlay(base, tmp_path / "zero", 0)  # a flavor disk of 0: the image's size
    assert [virtual(tmp_path / n) for n in ("same", "grown", "zero")] == [GIB, 2 * GIB, GIB]
