"""Bootable raw disks made with no loop devices and no mounts: FAT superfloppy, MBR+FAT+ext4."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from atwill.hostlib.run import run

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


# A partitioned disk (the Debian cloud image): syslinux's MBR boots the active FAT partition,
# whose kernel mounts the ext4 root partition; both file systems are written at their offsets
# in the file, so this too needs no loop devices and no mounts.
MIB = 1024 * 1024
SECTOR = 512
MBR_CODE = Path("/usr/lib/syslinux/mbr/mbr.bin")
MBR_CODE_SIZE = 440  # the boot code; the partition table follows it


@dataclass(frozen=True)
class Layout:
    """Where the two partitions of a boot + root disk are, in bytes."""

    boot_start: int
    boot_size: int
    root_start: int
    root_size: int

    @property
    def total(self) -> int:
        """The size of the whole disk."""
        return self.root_start + self.root_size


def partition_layout(boot_bytes: int, total_bytes: int) -> Layout:
    """Boot partition at 1 MiB, root partition after it to the end; all whole MiB."""
    boot_size = -(-boot_bytes // MIB) * MIB
    root_start = MIB + boot_size
    root_size = (total_bytes // MIB) * MIB - root_start
    if root_size < 64 * MIB:
        raise ValueError(f"a {total_bytes}-byte disk leaves no room for a root partition")
    return Layout(MIB, boot_size, root_start, root_size)


def sfdisk_script(layout: Layout) -> str:
    """An sfdisk script for an MBR table: FAT16 boot partition (active), then Linux root."""
    return ("label: dos\nunit: sectors\n"
            f"start={layout.boot_start // SECTOR}, size={layout.boot_size // SECTOR}, "
            "type=e, bootable\n"
            f"start={layout.root_start // SECTOR}, size={layout.root_size // SECTOR}, "
            "type=83\n")


def make_partitioned_disk(raw: Path, layout: Layout, boot_files: dict[str, Path],
                          boot_label: str, root: Path, root_label: str) -> None:
    """Write a raw MBR disk at raw: boot_files on a FAT boot partition, root's tree in ext4."""
    with open(raw, "wb") as disk:
        disk.truncate(layout.total)
    run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(raw)],
        input=sfdisk_script(layout), timeout=60)
    with open(raw, "r+b") as disk:
        disk.write(MBR_CODE.read_bytes()[:MBR_CODE_SIZE])
    _fat_partition(raw, layout, boot_files, boot_label)
    # -d copies the tree (owners, modes, xattrs, hard links) into the new file system.
    run(["mkfs.ext4", "-q", "-F", "-L", root_label, "-d", str(root),
         "-E", f"offset={layout.root_start},nodiscard", str(raw),
         f"{layout.root_size // 1024}k"], timeout=900)


def _fat_partition(raw: Path, layout: Layout, files: dict[str, Path], label: str) -> None:
    env_args = ["env", "MTOOLS_SKIP_CHECK=1", f"SOURCE_DATE_EPOCH={FILE_TIME}"]
    sectors = layout.boot_start // SECTOR
    # The hidden-sector count tells syslinux's boot sector where its partition starts.
    run([*env_args, "mkfs.vfat", "--invariant", "-F", "16", "-i", VOLUME_ID, "-n", label,
         f"--offset={sectors}", "-h", str(sectors), str(raw),
         str(layout.boot_size // 1024)], timeout=60)
    image = f"{raw}@@{layout.boot_start}"
    for name, path in sorted(files.items()):
        os.utime(path, (FILE_TIME, FILE_TIME))
        run([*env_args, "mcopy", "-m", "-o", "-i", image, str(path), f"::{name}"], timeout=120)
    run([*env_args, "syslinux", "--offset", str(layout.boot_start), "--install", str(raw)],
        timeout=60)


def to_compressed_qcow2(raw: Path, output: Path) -> None:
    """Convert the raw disk to a compressed qcow2 (smaller to store and upload)."""
    run(["qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", str(raw), str(output)],
        timeout=900)
