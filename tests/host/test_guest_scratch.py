"""A build's scratch directory with mounts left inside is unmounted, never deleted through."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.core.mountinfo import mounts_under
from atwill.guest import scratch
from atwill.hostlib.run import run

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts)")]


@pytest.fixture
def place(tmp_path: Path) -> Iterator[Path]:
    """A directory for the test, with nothing left mounted under it afterwards."""
    try:
        yield tmp_path
    finally:
        for point in mounts_under(Path("/proc/self/mountinfo").read_text(), str(tmp_path)):
            run(["umount", "--lazy", point], check=False)


def host_dirs(place: Path) -> tuple[Path, Path]:
    """Stand-ins for the host's /dev and /dev/shm, each holding a file that must survive."""
    dev, shm = place / "host-dev", place / "host-shm"
    for directory in (dev, shm):
        directory.mkdir()
        (directory / "precious").write_text("keep me")
    return dev, shm


def mount_like_mmdebstrap(tree: Path, dev: Path, shm: Path) -> None:
    """What a killed mmdebstrap leaves: the host's /dev bound in, /dev/shm on top of it."""
    (tree / "root" / "dev").mkdir(parents=True)
    run(["mount", "--bind", str(dev), str(tree / "root" / "dev")])
    (dev / "shm").mkdir(exist_ok=True)
    run(["mount", "--bind", str(shm), str(tree / "root" / "dev" / "shm")])
    (tree / "root" / "proc").mkdir()
    run(["mount", "-t", "tmpfs", "tmpfs", str(tree / "root" / "proc")])


def test_a_failed_build_leaves_the_hosts_files_and_no_mounts(place: Path) -> None:
    dev, shm = host_dirs(place)
    images = place / "images"
    images.mkdir()
    with pytest.raises(RuntimeError, match="mmdebstrap killed"):
        with scratch.scratch_dir(images) as tree:
            mount_like_mmdebstrap(tree, dev, shm)
            raise RuntimeError("mmdebstrap killed")
    assert (dev / "precious").read_text() == "keep me"
    assert (shm / "precious").read_text() == "keep me"
    assert list(images.iterdir()) == []
    assert mounts_under(Path("/proc/self/mountinfo").read_text(), str(place)) == []


def test_the_next_build_sweeps_what_an_interrupted_one_left(place: Path) -> None:
    dev, shm = host_dirs(place)
    images = place / "images"
    left = images / f"{scratch.PREFIX}interrupted"
    left.mkdir(parents=True)
    mount_like_mmdebstrap(left, dev, shm)
    (images / "kept.qcow2").write_text("an image")
    scratch.sweep(images)
    assert not left.exists()
    assert (images / "kept.qcow2").exists()
    assert (dev / "precious").read_text() == "keep me"
    assert (shm / "precious").read_text() == "keep me"
