"""A bad image put into a node's cache by hand is refused before QEMU starts.

The upload check keeps such images out of the image service; this is the
node's own check (qemu-img info with the declared format, and the header read
first), for images that reached a cache some other way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.agent.hypervisor import disks
from atwill.agent.hypervisor.qemu import QemuDriver
from atwill.agent.hypervisor.spec import QEMU, InstanceSpec

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(shutil.which(QEMU) is None, reason="needs QEMU"),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def qemu_img(*args: str | Path) -> None:
    subprocess.run(["qemu-img", "create", "-q", *map(str, args)], check=True)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[QemuDriver]:
    made = QemuDriver(tmp_path / "instances", sockets_dir=tmp_path / "qmp")
    yield made
    # Only instances of this test live here: stop any that started (by their pidfiles).
    for instance in made.list():
        made.delete(instance)


def spec_for(image: Path, disk_format: str) -> InstanceSpec:
    return InstanceSpec(uuid=str(uuid.uuid4()), name="safety", vcpus=1, memory_mb=64,
                        disk_gb=1, image_path=image, image_format=disk_format, accel="tcg")


def bad_image(cache: Path, case: str, secret: Path) -> tuple[Path, str, str]:
    """(cached image, declared disk_format, expected message) for one bad case."""
    image = cache / str(uuid.uuid4())
    if case == "backing":
        qemu_img("-f", "qcow2", "-b", secret, "-F", "raw", image)
        return image, "qcow2", "qcow2 image has a backing file"
    if case == "datafile":
        qemu_img("-f", "qcow2", "-o", f"data_file={secret}", image, "1M")
        return image, "qcow2", "external data file"
    if case == "hostextent":
        image.write_text('# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n'
                         f'RW 2048 FLAT "{secret}" 0\n')
        return image, "vmdk", "extents outside the image"
    qemu_img("-f", "qcow2", image, "1M")
    return image, "raw", "disk_format raw does not match the data, which is qcow2"


@pytest.mark.parametrize("case", ["backing", "datafile", "hostextent", "rawqcow2"])
def test_bad_cached_image_is_refused_before_qemu(driver: QemuDriver, tmp_path: Path,
                                                 case: str) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    secret = tmp_path / "node-key.pem"
    secret.write_bytes(b"\0" * (1 << 20))
    image, declared, message = bad_image(cache, case, secret)
    spec = spec_for(image, declared)
    with pytest.raises(disks.UnsafeImageError, match=message) as refused:
        driver.start(spec)
    assert image.name in str(refused.value) and "refused on this node" in str(refused.value)
    # Nothing half-made: no instance directory, overlay, pidfile or QMP socket.
    assert not driver.paths(spec.uuid).directory.exists()
    assert driver.pid(spec.uuid) is None and driver.state(spec.uuid) == "missing"
    assert not driver.paths(spec.uuid).qmp.exists()


def test_qemu_img_disagreeing_with_the_header_is_refused(tmp_path: Path) -> None:
    # What qemu-img says is checked on its own too (as if the header check missed it).
    image = tmp_path / "disk"
    image.write_bytes(b"")
    info = {"format": "qcow2", "backing-filename": "/etc/shadow"}
    assert disks.info_problem(info, "qcow2", image) == "it has a backing file"
    assert disks.info_problem({"format": "raw"}, "qcow2", image) == \
        "qemu-img reads it as raw, not qcow2"
    data = {"format": "qcow2", "format-specific": {"data": {"data-file": "/etc/shadow"}}}
    assert disks.info_problem(data, "qcow2", image) == "it has an external data file"
    extents = [{"filename": "/etc/shadow"}]
    vmdk = {"format": "vmdk", "format-specific": {"data": {"extents": extents}}}
    assert disks.info_problem(vmdk, "vmdk", image) == \
        "its vmdk extent is not the image file itself"
    vmdk["format-specific"]["data"]["extents"] = [{"filename": str(image)}] * 2
    assert disks.info_problem(vmdk, "vmdk", image) == "it has 2 vmdk extents, not one"


@pytest.mark.parametrize(("fmt", "options", "disk_format"), [
    ("qcow2", (), "qcow2"), ("raw", (), "raw"), ("vmdk", (), "vmdk"),
    ("vpc", ("-o", "subformat=fixed"), "vhd"),
])
def test_good_cached_image_starts(driver: QemuDriver, tmp_path: Path, fmt: str,
                                  options: tuple[str, ...], disk_format: str) -> None:
    image = tmp_path / "good"
    qemu_img("-f", fmt, *options, image, "1M")
    spec = spec_for(image, disk_format)
    driver.start(spec)
    try:
        assert driver.pid(spec.uuid) is not None
        assert driver.paths(spec.uuid).disk.exists()
    finally:
        driver.delete(spec.uuid)
    assert driver.pid(spec.uuid) is None
