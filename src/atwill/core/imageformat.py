"""Disk image headers: which format the data really is, and whether it points outside itself.

As Glance's format inspector (the fix for CVE-2024-32498): QEMU follows a qcow2's
backing file or external data file and a vmdk's extents and parent to paths on
the node, so an image that names any other file, or whose data is not the
declared disk_format (a qcow2 uploaded as raw is opened as qcow2 by anything
that guesses), is refused before it is stored or booted.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import BinaryIO

# Enough for every header and the ISO 9660 volume descriptor at 32 KiB.
HEAD_BYTES = 64 * 1024
# Glance disk_format -> QEMU's name for it; formats not listed are never booted.
QEMU_FORMATS = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc", "vhdx": "vhdx",
                "vdi": "vdi", "iso": "raw", "ami": "raw"}
# A vmdk's embedded descriptor is a few hundred bytes; anything larger is refused.
MAX_DESCRIPTOR = 64 * 1024
SECTOR = 512

QCOW2_MAGIC = b"QFI\xfb"
VMDK_MAGIC = b"KDMV"
# qcow2 incompatible feature bits QEMU 7 knows: dirty, corrupt, external data file,
# compression type, extended L2. Bit 2 is a data file; unknown bits are refused too.
QCOW2_DATA_FILE_BIT = 1 << 2
QCOW2_KNOWN_BITS = 0b11111
QCOW2_EXT_DATA_FILE = 0x44415441
QCOW2_EXT_END = 0
# The vmdk create types whose data lives in the one file itself.
VMDK_SELF_CONTAINED = ("monolithicSparse", "streamOptimized")
EXTENT_ACCESS = ("RW", "RDONLY", "NOACCESS")
# Declared formats whose data is plain bytes: nothing QEMU could interpret.
RAW_LIKE = ("raw", "ami", "ari", "aki")


class UnsafeImage(ValueError):
    """The image's data does not match its format, or names files outside itself."""


@dataclass(frozen=True)
class Inspection:
    """What the header says: the format and every problem found."""

    format: str
    problems: tuple[str, ...] = ()


def detect(head: bytes, tail: bytes = b"") -> str:
    """The format the header shows; 'raw' when it is none QEMU would recognise."""
    checks = (
        (QCOW2_MAGIC, 0, "qcow2"), (VMDK_MAGIC, 0, "vmdk"), (b"COWD", 0, "vmdk"),
        (b"# Disk DescriptorFile", 0, "vmdk"), (b"vhdxfile", 0, "vhdx"),
        (b"conectix", 0, "vhd"), (b"\x7f\x10\xda\xbe", 0x40, "vdi"),
        (b"QED\x00", 0, "qed"), (b"CD001", 0x8001, "iso"), (b"CD001", 0x8801, "iso"),
        (b"CD001", 0x9001, "iso"),
    )
    for magic, offset, name in checks:
        if head[offset:offset + len(magic)] == magic:
            return name
    # A fixed-size VHD has its only footer in the last sector.
    if tail[-SECTOR:][:8] == b"conectix":
        return "vhd"
    return "raw"


def inspect(data: BinaryIO) -> Inspection:
    """Read the header (and a vmdk's descriptor) of data and list what is unsafe in it."""
    head = _read(data, 0, HEAD_BYTES)
    size = data.seek(0, 2)
    tail = _read(data, max(0, size - SECTOR), SECTOR)
    kind = detect(head, tail)
    if kind == "qcow2":
        return Inspection(kind, tuple(qcow2_problems(head)))
    if kind == "vmdk":
        return Inspection(kind, tuple(vmdk_problems(data, head)))
    if kind == "qed":
        return Inspection(kind, ("qed images are not supported",))
    return Inspection(kind)


def check(data: BinaryIO, declared: str) -> str:
    """The detected format when data is safe to use as declared; UnsafeImage otherwise."""
    found = inspect(data)
    if not matches(declared, found.format):
        raise UnsafeImage(f"Image disk_format {declared} does not match the data, which is "
                          f"{found.format}.")
    if found.problems:
        raise UnsafeImage(f"Unsafe {found.format} image: {'; '.join(found.problems)}.")
    return found.format


def matches(declared: str, found: str) -> bool:
    """Whether data detected as found may be stored and booted as declared."""
    if declared in RAW_LIKE:
        # An ISO is raw bytes too (hybrid installer images are booted as raw disks).
        return found in ("raw", "iso") if declared == "raw" else found == "raw"
    return declared == found


def overlay_problems(head: bytes) -> list[str]:
    """What is unsafe in an instance's own qcow2 disk, which its QEMU (the tenant, if the
    guest escapes) can rewrite: anything but the backing file, which QEMU is always given
    explicitly, so the name in the header is never followed."""
    if head[:4] != QCOW2_MAGIC:
        return ["the instance disk is not a qcow2 image"]
    return [p for p in qcow2_problems(head) if p != "qcow2 image has a backing file"]


def qcow2_problems(head: bytes) -> list[str]:
    """A backing file, an external data file or unknown incompatible features."""
    if len(head) < 72:
        return ["qcow2 header is truncated"]
    version, backing_offset = struct.unpack_from(">IQ", head, 4)
    if version not in (2, 3):
        return [f"qcow2 version {version} is not supported"]
    problems = ["qcow2 image has a backing file"] if backing_offset else []
    if version == 2:
        return problems + _qcow2_extensions(head, 72)
    if len(head) < 104:
        return [*problems, "qcow2 header is truncated"]
    (incompatible,) = struct.unpack_from(">Q", head, 72)
    (header_length,) = struct.unpack_from(">I", head, 100)
    if incompatible & QCOW2_DATA_FILE_BIT:
        problems.append("qcow2 image has an external data file")
    if incompatible & ~QCOW2_KNOWN_BITS:
        problems.append(f"qcow2 image has unknown incompatible features {incompatible:#x}")
    return problems + _qcow2_extensions(head, header_length)


def _qcow2_extensions(head: bytes, offset: int) -> list[str]:
    # Extensions follow the header, each type, length, data padded to 8 bytes.
    while offset + 8 <= len(head):
        kind, length = struct.unpack_from(">II", head, offset)
        if kind == QCOW2_EXT_END:
            return []
        if kind == QCOW2_EXT_DATA_FILE:
            return ["qcow2 image names an external data file"]
        offset += 8 + (length + 7) // 8 * 8
    return ["qcow2 header extensions do not end within the header"]


def vmdk_problems(data: BinaryIO, head: bytes) -> list[str]:
    """Anything but one sparse extent in the file itself, with no parent."""
    if head.startswith(b"COWD"):
        return ["vmdk version 3 (COWD) images are not supported"]
    if not head.startswith(VMDK_MAGIC):
        return ["vmdk descriptor file names extents outside the image"]
    if len(head) < 44:
        return ["vmdk header is truncated"]
    (capacity,) = struct.unpack_from("<Q", head, 12)
    offset, length = struct.unpack_from("<QQ", head, 28)
    if capacity == 0:
        # QEMU then reads the embedded descriptor's extents instead of this file's grains.
        return ["vmdk sparse header has no capacity"]
    if offset == 0 or length == 0:
        return ["vmdk image has no embedded descriptor"]
    if length * SECTOR > MAX_DESCRIPTOR:
        return ["vmdk descriptor is too large"]
    text = _read(data, offset * SECTOR, length * SECTOR).split(b"\0", 1)[0]
    return descriptor_problems(text.decode("latin-1"))


def descriptor_problems(text: str) -> list[str]:
    """A vmdk descriptor's create type, extents and parent, checked as QEMU reads them.

    QEMU finds createType with a substring search (a commented copy counts) and takes
    extent lines loosely ("RW +2048 FLAT …" parses), so every mention counts here.
    """
    problems: list[str] = []
    types = re.findall(r'createType\s*=\s*"([^"]*)"', text)
    if text.count("createType") != 1 or len(types) != 1 or types[0] not in VMDK_SELF_CONTAINED:
        kind = types[0] if len(types) == 1 else f"{len(types)} create types"
        problems.append(f"vmdk create type {kind[:32]!r} is not a single self-contained file")
    extents = [line for line in text.splitlines()
               if line.lstrip().lstrip("#").lstrip().startswith(EXTENT_ACCESS)]
    if len(extents) != 1:
        problems.append(f"vmdk image has {len(extents)} extents, not one")
    else:
        fields = extents[0].split()
        name = extents[0].split('"')[1] if extents[0].count('"') == 2 else None
        if len(fields) < 3 or fields[2] != "SPARSE" or name is None or "/" in name:
            problems.append("vmdk extent is not the sparse image file itself")
    if "parentFileNameHint" in text:
        problems.append("vmdk image has a parent (backing) file")
    return problems


def _read(data: BinaryIO, offset: int, length: int) -> bytes:
    data.seek(offset)
    return data.read(length)
