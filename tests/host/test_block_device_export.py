"""The LVM backend's export path on a real block device: a loop device stands for the thin
LV (device-mapper is missing on these machines, loop devices are not).

What runs for real: an image written raw onto the device with the LVM backend's
qemu-img command line, the storage node's own export (qemu-storage-daemon opening the
device raw on host_device, TLS from the cluster CA) read and written by node A, and an
extend under the running export after the device grew (as after lvextend). What does
not: LVM itself (tests/host/test_lvm_thin.py, skipped without device-mapper).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.core import lvm
from tests.host.test_storage_node import Cloud, nbd_io, new_cloud

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(any(shutil.which(t) is None for t in
                                     ("qemu-storage-daemon", "losetup", "qemu-io")),
                                 reason="needs qemu-storage-daemon, qemu-io and losetup"),
              pytest.mark.skipif(not Path("/dev/loop-control").exists(),
                                 reason="needs loop devices (/dev/loop-control)")]

MIB = 1 << 20


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    yield from new_cloud("blk-")


@pytest.fixture
def device(cloud: Cloud) -> Iterator[tuple[Path, Path]]:
    """(a loop device of 64 MiB, its backing file), detached after."""
    backing = cloud.root / "lv.img"
    with backing.open("wb") as handle:
        handle.truncate(64 * MIB)
    loop = Path(subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                               capture_output=True, text=True).stdout.strip())
    try:
        yield loop, backing
    finally:
        cloud.manager.revoke_all()  # no daemon holds the device when it is detached
        subprocess.run(["losetup", "--detach", str(loop)], capture_output=True, timeout=60)


def test_a_block_device_is_written_exported_and_grown(cloud: Cloud,
                                                      device: tuple[Path, Path]) -> None:
    loop, backing = device
    image = cloud.root / "image.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "32M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", str(image)],
                   check=True, capture_output=True)
    subprocess.run(lvm.write_image_argv(str(image), "qcow2", str(loop)), check=True,
                   timeout=120)

    exports = cloud.manager.exports
    export = exports.ensure("v1", "node-a-id", "node-a", "127.0.0.1", loop)
    assert nbd_io(cloud.a, export.port, "v1", "read -P 0x5a 0 64k").returncode == 0
    assert nbd_io(cloud.a, export.port, "v1", "write -P 0x77 1M 64k").returncode == 0
    # Written through to the device (cache.direct=on): what a thin snapshot would hold.
    local = subprocess.run(["qemu-io", "-f", "raw", "-r", "-U", "-c", "read -P 0x77 1M 64k",
                            str(loop)], capture_output=True, text=True, timeout=60)
    assert local.returncode == 0 and "verification failed" not in local.stdout
    refused = nbd_io(cloud.stranger, export.port, "v1", "read 0 4k")
    assert refused.returncode != 0

    # The device grows first (lvextend; here the loop device's backing file), then the
    # export's node, as the LVM store's grow_under_export and Exports.resize do.
    with backing.open("r+b") as handle:
        handle.truncate(128 * MIB)
    subprocess.run(["losetup", "--set-capacity", str(loop)], check=True, timeout=60)
    exports.resize(export, 128 * MIB)
    length = nbd_io(cloud.a, export.port, "v1", "length")
    assert length.returncode == 0 and "128 MiB" in length.stdout, length.stdout
    exports.revoke("v1", "node-a-id")
