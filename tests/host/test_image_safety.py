"""A bad image put into a node's cache by hand is refused before QEMU starts.

The upload check keeps such images out of the image service; this is the
node's own check (qemu-img info with the declared format, and the header read
first), for images that reached a cache some other way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.agent import snapshot
from atwill.agent.hypervisor import disks
from atwill.agent.hypervisor.qemu import QemuDriver
from atwill.agent.hypervisor.qmp import QMP
from atwill.agent.hypervisor.spec import QEMU, InstanceSpec
from atwill.core import guest_ids
from atwill.hostlib.run import run

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(shutil.which(QEMU) is None, reason="needs QEMU"),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def qemu_img(*args: str | Path) -> None:
    subprocess.run(["qemu-img", "create", "-q", *map(str, args)], check=True)


@pytest.fixture
def driver() -> Iterator[QemuDriver]:
    # Short (a UNIX socket path has 107 bytes) and searchable: QEMU drops to the instance's
    # own user, who must pass through to the disk, as on a node.
    root = Path(tempfile.mkdtemp(prefix="awt-is-", dir="/tmp"))
    root.chmod(0o711)
    made = QemuDriver(root / "instances", sockets_dir=root / "qmp")
    try:
        yield made
    finally:
        # Only instances of this test live here: stop any that started (by their pidfiles).
        for instance in made.list():
            made.delete(instance)
        shutil.rmtree(root, ignore_errors=True)


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
def test_good_cached_image_starts(driver: QemuDriver, fmt: str,
                                  options: tuple[str, ...], disk_format: str) -> None:
    image = driver.instances_dir.parent / "good"
    qemu_img("-f", fmt, *options, image, "1M")
    image.chmod(0o600)  # as the node's cache keeps it: lent to the image's group at start
    spec = spec_for(image, disk_format)
    driver.start(spec)
    try:
        pid = driver.pid(spec.uuid)
        assert pid is not None
        assert driver.paths(spec.uuid).disk.exists()
        # QEMU dropped root (it reads the base image through its group).
        assert guest_ids.in_block(_uid(pid))
        assert image.stat().st_mode & 0o777 == 0o640
    finally:
        driver.delete(spec.uuid)
    assert driver.pid(spec.uuid) is None


def _pattern_image(path: Path, byte: bytes) -> None:
    path.write_bytes(byte * (1 << 20))


def test_a_tampered_instance_disk_never_chooses_what_root_opens(driver: QemuDriver) -> None:
    # The instance's own QEMU can write its disk's header (an escaped guest runs as that
    # user): the backing file it names is ignored, an external data file is refused.
    root = driver.instances_dir.parent
    base, secret = root / "base.raw", root / "node-key.raw"
    _pattern_image(base, b"B")
    _pattern_image(secret, b"S")
    spec = spec_for(base, "raw")
    driver.start(spec)
    disk = driver.paths(spec.uuid).disk
    driver.stop(spec.uuid, timeout=1)
    subprocess.run(["qemu-img", "rebase", "-u", "-F", "raw", "-b", str(secret), str(disk)],
                   check=True)
    driver.start(spec)
    try:
        with QMP(driver.paths(spec.uuid).qmp) as qmp:
            [block] = [b for b in qmp.execute("query-block") if b.get("inserted")]
        chain = block["inserted"]["image"]["backing-image"]["filename"]
        assert chain == str(base), block
        # The snapshot's copy flattens onto the real base, not the name in the header.
        out = root / "snap.qcow2"
        run(snapshot.convert_command(disk, base, "raw", out, None))
        flat = root / "flat.raw"
        subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(out),
                        str(flat)], check=True)
        assert flat.read_bytes()[:4096] == b"B" * 4096
    finally:
        driver.stop(spec.uuid, timeout=1)
    # An external data file (host root would open it read-write) is refused before QEMU.
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                    f"data_file={secret},data_file_raw=on", str(disk), "1M"], check=True)
    _pattern_image(secret, b"S")  # (qemu-img create zeroed it)
    with pytest.raises(disks.UnsafeImageError, match="external data file"):
        driver.start(spec)
    assert driver.pid(spec.uuid) is None
    with pytest.raises(disks.UnsafeImageError, match="external data file"):
        snapshot.take(driver, spec.uuid, root / "never.qcow2")
    assert secret.read_bytes()[:4096] == b"S" * 4096
