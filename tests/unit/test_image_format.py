"""The image format inspector: real images made by qemu-img and hand-made headers."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from atwill.core import imageformat
from atwill.core.imageformat import UnsafeImage, check, inspect

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")


def qemu_img(*args: str | Path) -> None:
    subprocess.run(["qemu-img", "create", "-q", *map(str, args)], check=True)


def inspect_file(path: Path) -> imageformat.Inspection:
    with path.open("rb") as data:
        return inspect(data)


def check_file(path: Path, declared: str) -> str:
    with path.open("rb") as data:
        return check(data, declared)


def vmdk_with_descriptor(descriptor: str) -> io.BytesIO:
    """A sparse vmdk header whose embedded descriptor (at sector 1) is descriptor."""
    header = bytearray(512)
    header[0:4] = b"KDMV"
    struct.pack_into("<IIQQQQ", header, 4, 1, 3, 2048, 128, 1, 20)
    return io.BytesIO(bytes(header) + descriptor.encode().ljust(20 * 512, b"\0"))


SPARSE = '# Disk DescriptorFile\ncreateType="monolithicSparse"\nRW 2048 SPARSE "disk.vmdk"\n'


@needs_qemu_img
@pytest.mark.parametrize(("fmt", "options"), [
    ("qcow2", ()), ("vmdk", ()), ("vmdk", ("-o", "subformat=streamOptimized")),
    ("vhdx", ()), ("vdi", ()), ("raw", ()),
])
def test_good_images_pass_as_declared(tmp_path: Path, fmt: str, options: tuple[str, ...]
                                      ) -> None:
    image = tmp_path / f"disk.{fmt}"
    qemu_img("-f", fmt, *options, image, "1M")
    assert check_file(image, fmt) == fmt
    assert inspect_file(image).problems == ()


@needs_qemu_img
@pytest.mark.parametrize("subformat", ["fixed", "dynamic"])
def test_vhd_both_subformats_are_vhd(tmp_path: Path, subformat: str) -> None:
    image = tmp_path / "disk.vhd"
    qemu_img("-f", "vpc", "-o", f"subformat={subformat}", image, "1M")
    assert check_file(image, "vhd") == "vhd"


@needs_qemu_img
def test_qcow2_with_backing_file_is_refused(tmp_path: Path) -> None:
    qemu_img("-f", "raw", tmp_path / "base.raw", "1M")
    image = tmp_path / "disk.qcow2"
    qemu_img("-f", "qcow2", "-b", "/etc/shadow", "-F", "raw", image, "1M")
    with pytest.raises(UnsafeImage, match="qcow2 image has a backing file"):
        check_file(image, "qcow2")


@needs_qemu_img
def test_qcow2_with_data_file_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "disk.qcow2"
    qemu_img("-f", "qcow2", "-o", f"data_file={tmp_path / 'data.raw'}", image, "1M")
    with pytest.raises(UnsafeImage, match="external data file"):
        check_file(image, "qcow2")


@needs_qemu_img
@pytest.mark.parametrize("subformat", ["monolithicFlat", "twoGbMaxExtentSparse",
                                       "twoGbMaxExtentFlat"])
def test_vmdk_descriptor_files_are_refused(tmp_path: Path, subformat: str) -> None:
    image = tmp_path / "disk.vmdk"
    qemu_img("-f", "vmdk", "-o", f"subformat={subformat}", image, "1M")
    with pytest.raises(UnsafeImage, match="extents outside the image"):
        check_file(image, "vmdk")


def test_vmdk_descriptor_naming_a_host_file_is_refused() -> None:
    text = ('# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n'
            'RW 2048 FLAT "/var/lib/atwill-agent/node-key.pem" 0\n')
    with pytest.raises(UnsafeImage, match="extents outside the image"):
        check(io.BytesIO(text.encode()), "vmdk")
    with pytest.raises(UnsafeImage, match="does not match the data, which is vmdk"):
        check(io.BytesIO(text.encode()), "raw")


@pytest.mark.parametrize(("descriptor", "problem"), [
    (SPARSE.replace("SPARSE \"disk", "FLAT \"/etc/shadow"), "not the sparse image file"),
    (SPARSE.replace('"disk.vmdk"', '"/srv/other/disk.vmdk"'), "not the sparse image file"),
    (SPARSE + 'RW 2048 FLAT "/etc/shadow" 0\n', "2 extents"),
    (SPARSE.replace("monolithicSparse", "monolithicFlat"), "create type 'monolithicFlat'"),
    (SPARSE + 'parentFileNameHint="/etc/shadow"\n', "parent"),
    ('# Disk DescriptorFile\ncreateType="monolithicSparse"\n', "0 extents"),
    # The review's bypass: QEMU finds the commented createType first and parses "+2048".
    ('#createType="monolithicFlat"\ncreateType="monolithicSparse"\nRDONLY 100 SPARSE "self"\n'
     'RW +2048 FLAT "/var/lib/atwill-agent/node-key.pem" 0\n', "create type"),
    (SPARSE + '#RW 2048 FLAT "/etc/shadow" 0\n', "2 extents"),
    (SPARSE + '# parentFileNameHint="/etc/shadow"\n', "parent"),
])
def test_sparse_vmdk_with_bad_embedded_descriptor(descriptor: str, problem: str) -> None:
    with pytest.raises(UnsafeImage, match=problem):
        check(vmdk_with_descriptor(descriptor), "vmdk")


def test_sparse_vmdk_with_one_sparse_extent_passes() -> None:
    assert check(vmdk_with_descriptor(SPARSE), "vmdk") == "vmdk"


def test_vmdk_without_descriptor_or_cowd_is_refused() -> None:
    header = bytearray(512)
    header[0:4] = b"KDMV"
    with pytest.raises(UnsafeImage, match="no capacity"):
        check(io.BytesIO(bytes(header)), "vmdk")
    struct.pack_into("<Q", header, 12, 2048)
    with pytest.raises(UnsafeImage, match="no embedded descriptor"):
        check(io.BytesIO(bytes(header)), "vmdk")
    with pytest.raises(UnsafeImage, match="COWD"):
        check(io.BytesIO(b"COWD" + bytes(508)), "vmdk")


@needs_qemu_img
@pytest.mark.parametrize("fmt", ["qcow2", "vmdk", "vhdx", "vdi"])
def test_raw_that_is_really_another_format_is_refused(tmp_path: Path, fmt: str) -> None:
    image = tmp_path / "disk"
    qemu_img("-f", fmt, image, "1M")
    with pytest.raises(UnsafeImage, match=f"disk_format raw does not match the data, which "
                                          f"is {fmt}"):
        check_file(image, "raw")


def iso_bytes() -> bytes:
    data = bytearray(0x9000)
    data[0x8001:0x8006] = b"CD001"
    return bytes(data)


def test_iso_declared_qcow2_is_refused_but_raw_or_iso_pass() -> None:
    with pytest.raises(UnsafeImage, match="disk_format qcow2 does not match"):
        check(io.BytesIO(iso_bytes()), "qcow2")
    assert check(io.BytesIO(iso_bytes()), "iso") == "iso"
    assert check(io.BytesIO(iso_bytes()), "raw") == "iso"
    with pytest.raises(UnsafeImage, match="disk_format iso does not match"):
        check(io.BytesIO(bytes(4096)), "iso")


def qcow2_v3(incompatible: int = 0, backing: int = 0, extensions: bytes = b"") -> bytes:
    header = bytearray(104)
    header[0:4] = b"QFI\xfb"
    struct.pack_into(">IQ", header, 4, 3, backing)
    struct.pack_into(">Q", header, 72, incompatible)
    struct.pack_into(">I", header, 100, 104)
    return bytes(header) + extensions + bytes(8)


@pytest.mark.parametrize(("header", "problem"), [
    (qcow2_v3(backing=0x200), "backing file"),
    (qcow2_v3(incompatible=1 << 2), "external data file"),
    (qcow2_v3(incompatible=1 << 9), "unknown incompatible features"),
    (qcow2_v3(extensions=struct.pack(">II", 0x44415441, 11) + b"/etc/shadow\0"),
     "names an external data file"),
    (qcow2_v3(extensions=struct.pack(">II", 0x12345678, 1 << 20)), "do not end"),
    (b"QFI\xfb" + struct.pack(">I", 9) + bytes(100), "version 9"),
    (b"QFI\xfb" + bytes(20), "truncated"),
])
def test_hand_made_qcow2_headers(header: bytes, problem: str) -> None:
    with pytest.raises(UnsafeImage, match=problem):
        check(io.BytesIO(header), "qcow2")


def test_hand_made_clean_qcow2_v2_and_v3_pass() -> None:
    assert check(io.BytesIO(qcow2_v3()), "qcow2") == "qcow2"
    v2 = b"QFI\xfb" + struct.pack(">IQ", 2, 0) + bytes(60) + bytes(8)
    assert check(io.BytesIO(v2), "qcow2") == "qcow2"


def test_qed_and_plain_bytes() -> None:
    with pytest.raises(UnsafeImage, match="does not match the data, which is qed"):
        check(io.BytesIO(b"QED\0" + bytes(60)), "raw")
    assert check(io.BytesIO(b""), "raw") == "raw"
    assert check(io.BytesIO(b"hello"), "ami") == "raw"
    with pytest.raises(UnsafeImage, match="does not match"):
        check(io.BytesIO(qcow2_v3()), "aki")
