"""A bootable FAT "superfloppy": syslinux loads the kernel and initramfs; no loops, no mounts."""

from __future__ import annotations

import os
from pathlib import Path

from ..agent.host.run import run

# A fixed volume id and file times keep the disk the same from build to build.
VOLUME_ID = "41745769"
LABEL = "ATWILLBOOT"
FILE_TIME = 315532800  # 1980-01-01, the FAT epoch
SLACK = 2 * 1024 * 1024


def syslinux_cfg(kernel: str, initrd: str, cmdline: str) -> str:
    """A syslinux.cfg that boots at once, also on the serial console."""
    return (f"SERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\n"
            f"LABEL linux\n  KERNEL {kernel}\n  INITRD {initrd}\n  APPEND {cmdline}\n")


def size_for(files: dict[str, Path]) -> int:
    """Disk size in bytes: the files plus room for FAT and syslinux, whole MiB, 16 MiB least."""
    total = sum(path.stat().st_size for path in files.values()) + SLACK
    mib = max(16, -(-total // (1024 * 1024)))
    return mib * 1024 * 1024


def make_boot_disk(raw: Path, files: dict[str, Path]) -> None:
    """Write a raw FAT disk image at raw holding files (disk name -> host path), bootable."""
    size = size_for(files)
    with open(raw, "wb") as disk:
        disk.truncate(size)
    # mtools (also run by syslinux) stamps directory entries with SOURCE_DATE_EPOCH.
    env_args = ["env", "MTOOLS_SKIP_CHECK=1", f"SOURCE_DATE_EPOCH={FILE_TIME}"]
    run([*env_args, "mkfs.vfat", "--invariant", "-i", VOLUME_ID, "-n", LABEL, str(raw)],
        timeout=60)
    for name, path in sorted(files.items()):
        os.utime(path, (FILE_TIME, FILE_TIME))
        run([*env_args, "mcopy", "-m", "-o", "-i", str(raw), str(path), f"::{name}"], timeout=60)
    run([*env_args, "syslinux", "--install", str(raw)], timeout=60)


def to_qcow2(raw: Path, output: Path) -> None:
    """Convert the raw disk to qcow2."""
    run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(output)],
        timeout=120)
