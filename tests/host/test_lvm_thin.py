"""The LVM thin backend against real LVM: a throwaway volume group on a loop device.

Runs only where device-mapper exists (/dev/mapper/control), lvm2 and losetup are
installed and the test is root; skipped otherwise, with the reason. The machines these
tests were written on have no device-mapper (their kernel cannot load dm modules), so this
test has NOT been run there: the LVM thin backend is built, not exercised.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.agent.storage.lvm_volumes import LvmStore, pool_problem
from atwill.core.lvm import GIB, ThinPool

pytestmark = [
    pytest.mark.host,
    pytest.mark.skipif(not Path("/dev/mapper/control").exists(),
                       reason="no device-mapper on this kernel (/dev/mapper/control): "
                              "LVM thin volumes cannot be made here"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in
                           ("lvcreate", "vgcreate", "losetup", "qemu-io", "qemu-img")),
                       reason="needs lvm2, losetup and qemu-utils"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[ThinPool]:
    """A volume group of 2 GiB on a sparse file with a 1 GiB thin pool, removed after."""
    backing = tmp_path / "pv.img"
    with backing.open("wb") as handle:
        handle.truncate(2 * GIB)
    loop = sh("losetup", "--find", "--show", str(backing)).strip()
    vg = f"atwilltest{uuid.uuid4().hex[:8]}"
    try:
        sh("vgcreate", "--yes", vg, loop)
        sh("lvcreate", "--yes", "--type", "thin-pool", "--size", "1g", "--name", "pool", vg)
        yield ThinPool(vg, "pool")
    finally:
        subprocess.run(["vgremove", "--yes", "--force", vg], capture_output=True, timeout=120)
        subprocess.run(["pvremove", "--yes", loop], capture_output=True, timeout=120)
        subprocess.run(["losetup", "--detach", loop], capture_output=True, timeout=60)


def reads(device: Path, pattern: str) -> bool:
    done = subprocess.run(["qemu-io", "-f", "raw", "-r", "-U", "-c",
                           f"read -P {pattern} 0 64k", str(device)],
                          capture_output=True, text=True, timeout=60)
    return done.returncode == 0 and "verification failed" not in done.stdout


def test_volumes_snapshots_clones_extend_and_delete(pool: ThinPool, tmp_path: Path) -> None:
    assert pool_problem(pool) is None
    assert pool_problem(ThinPool(pool.vg, "nopool")) is not None
    store = LvmStore(pool, tmp_path / "work")
    store.prepare()
    image = tmp_path / "image.qcow2"
    sh("qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M")
    sh("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", str(image))

    store.create_from_image("v1", 1, image, "qcow2")
    assert reads(store.volume("v1"), "0x5a")
    store.take_snapshot("v1", "s1")
    sh("qemu-io", "-f", "raw", "-c", "write -P 0x33 0 64k", str(store.volume("v1")))
    store.create_from_snapshot("v2", 2, "s1")  # the snapshot's data, not the volume's now
    assert reads(store.volume("v2"), "0x5a") and reads(store.volume("v1"), "0x33")
    assert store.volume_size("v2") == 2 * GIB
    store.create_from_volume("v3", 1, "v1")
    assert reads(store.volume("v3"), "0x33")
    store.resize("v1", 3)
    assert store.volume_size("v1") == 3 * GIB
    assert store.volumes() == {"v1", "v2", "v3"} and store.snapshots() == {"s1"}

    inventory = store.inventory()
    assert inventory["backend"] == "lvm" and inventory["total_gb"] == 1
    assert 0 <= inventory["free_gb"] <= 1

    upload = tmp_path / "upload.qcow2"
    store.copy_to_qcow2("v1", upload)
    assert subprocess.run(["qemu-io", "-f", "qcow2", "-r", "-c", "read -P 0x33 0 64k",
                           str(upload)], capture_output=True, timeout=60).returncode == 0

    store.delete_volume("v1")  # its snapshot and clones live on
    assert reads(store.volume("v2"), "0x5a")
    for vid in ("v2", "v3"):
        store.delete_volume(vid)
    store.delete_snapshot("s1")
    assert store.volumes() == set() and store.snapshots() == set()
