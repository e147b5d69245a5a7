"""The file backend: each volume a sparse qcow2 file, each snapshot an independent copy.

Snapshots are whole qcow2 copies (storage/snapshots/<id>.qcow2), not internal qcow2
snapshots: an internal snapshot cannot be taken or dropped while the export's daemon holds
the image's write lock, it dies with its volume (Cinder lets a volume made from it live
on), and a copy is a file a clone can be read from with a shared lock while the volume is
written. Every file is made under a hidden .partial name and renamed when complete, so a
crash half-way never leaves a file that looks like a volume.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from atwill.agent.hypervisor import disks
from atwill.hostlib.run import Reverter, run

GIB = 1 << 30
SUFFIX = ".qcow2"
# Volume and snapshot ids name files: nothing that could leave the directory.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
# qemu-img converting or copying a GiB-sized volume on a busy disk takes a while.
COPY_TIMEOUT = 3600


def check_id(ident: str) -> str:
    """ident if it can name a file here; ValueError otherwise."""
    if not isinstance(ident, str) or not _ID.fullmatch(ident):
        raise ValueError(f"not a volume or snapshot id: {ident!r}")
    return ident


class VolumeStore:
    """Volumes and snapshots under one directory (0700 root, files 0600 root).

    The LVM thin backend (lvm_volumes.LvmStore) answers the same calls."""

    backend = "file"
    formats = ("qcow2",)
    # A copy of an exported volume goes through its export's daemon (Exports.backup).
    snapshots_live = False

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def snapshot_dir(self) -> Path:
        return self.root / "snapshots"

    def prepare(self) -> None:
        """Make the directories, root's alone."""
        for directory in (self.root, self.snapshot_dir):
            directory.mkdir(parents=True, exist_ok=True)
            os.chown(directory, 0, 0)
            directory.chmod(0o700)

    def volume(self, ident: str) -> Path:
        return self.root / f"{check_id(ident)}{SUFFIX}"

    def snapshot(self, ident: str) -> Path:
        return self.snapshot_dir / f"{check_id(ident)}{SUFFIX}"

    def volumes(self) -> set[str]:
        """The ids of the volumes on disk."""
        return _ids(self.root)

    def snapshots(self) -> set[str]:
        """The ids of the snapshots on disk."""
        return _ids(self.snapshot_dir)

    def create_blank(self, ident: str, size_gb: int) -> None:
        """A blank sparse volume of size_gb."""
        with making(self.volume(ident)) as partial:
            run(["qemu-img", "create", "-q", "-f", "qcow2", str(partial), f"{size_gb}G"],
                timeout=60)

    def create_from_image(self, ident: str, size_gb: int, image: Path, disk_format: str) -> None:
        """A volume holding image (raw or qcow2, checked as for booting), size_gb large.

        An image whose virtual size (read here, not the image service's word) exceeds
        size_gb is refused (disks.ImageTooLargeError) before anything is copied: a small
        file may describe a disk of terabytes, which the volume would become."""
        fmt = disks.verify_image(image, disk_format)
        disks.check_fits(image, fmt, size_gb, "volume")
        self._copy(image, fmt, self.volume(ident), size_gb)

    def create_from_volume(self, ident: str, size_gb: int, source: str) -> None:
        """An independent copy of volume source, at least size_gb."""
        self._copy(self.volume(source), "qcow2", self.volume(ident), size_gb, shared=True)

    def create_from_snapshot(self, ident: str, size_gb: int, snapshot: str) -> None:
        """An independent copy of snapshot, at least size_gb."""
        self._copy(self.snapshot(snapshot), "qcow2", self.volume(ident), size_gb)

    def take_snapshot(self, volume: str, snapshot: str) -> None:
        """A copy of a volume nobody writes to (an exported one goes through its daemon)."""
        with making(self.snapshot(snapshot)) as partial:
            _convert(self.volume(volume), "qcow2", partial, shared=False)

    def blank_like(self, volume: str, target: Path) -> None:
        """An empty qcow2 at target as large as volume: a live backup's destination."""
        size = self.size_bytes(self.volume(volume), shared=True)
        run(["qemu-img", "create", "-q", "-f", "qcow2", str(target), str(size)], timeout=60)
        target.chmod(0o600)

    def resize(self, ident: str, size_gb: int) -> None:
        """Grow a volume nobody has open to size_gb."""
        run(["qemu-img", "resize", "-q", "-f", "qcow2", str(self.volume(ident)), f"{size_gb}G"],
            timeout=60)

    def size_bytes(self, path: Path, shared: bool = False) -> int:
        """The virtual size of a qcow2 file (shared: while a daemon may hold it open)."""
        args = ["qemu-img", "info", "--output", "json", "-f", "qcow2"]
        done = run([*args, *(["-U"] if shared else []), str(path)], timeout=60)
        size: int = json.loads(done.stdout)["virtual-size"]
        return size

    def volume_size(self, ident: str) -> int:
        """The volume's virtual size in bytes (a daemon may hold it open)."""
        return self.size_bytes(self.volume(ident), shared=True)

    def grow_under_export(self, ident: str, size_gb: int) -> None:
        """Nothing to do before an export's daemon grows a qcow2 it holds."""

    def activate(self, ident: str) -> None:
        """A file needs no activation before it is exported."""

    def delete_volume(self, ident: str) -> None:
        self.volume(ident).unlink(missing_ok=True)

    def delete_snapshot(self, ident: str) -> None:
        self.snapshot(ident).unlink(missing_ok=True)

    def _copy(self, source: Path, fmt: str, target: Path, size_gb: int,
              shared: bool = False) -> None:
        if not source.is_file():
            raise FileNotFoundError(f"{source.name} is not on this storage node")
        with making(target) as partial:
            _convert(source, fmt, partial, shared)
            made = self.size_bytes(partial)
            if made > size_gb * GIB:  # never larger than asked, whatever the source
                raise disks.ImageTooLargeError(
                    f"{source.name} refused on this node: its virtual size is {made} bytes, "
                    f"larger than the volume of {size_gb} GiB.")
            if size_gb * GIB > made:
                run(["qemu-img", "resize", "-q", "-f", "qcow2", str(partial), f"{size_gb}G"],
                    timeout=60)



@contextlib.contextmanager
def making(target: Path) -> Iterator[Path]:
    """Make target under a hidden partial name: renamed when done, removed on failure."""
    if target.exists():
        raise FileExistsError(f"{target.name} exists already")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)  # a crash's leftover: made again from scratch
    with Reverter() as revert:
        revert.add(lambda: partial.unlink(missing_ok=True))
        yield partial
        partial.chmod(0o600)
        partial.replace(target)


def convert_args(source: Path, fmt: str, target: Path, shared: bool) -> list[str]:
    """qemu-img convert of source (its format always given, never guessed) to a sparse qcow2."""
    # -U reads a volume another daemon holds open (a clone of an exported volume).
    return ["qemu-img", "convert", "-q", *(["-U"] if shared else []), "-f", fmt,
            "-O", "qcow2", str(source), str(target)]


def _convert(source: Path, fmt: str, target: Path, shared: bool) -> None:
    run(convert_args(source, fmt, target, shared), timeout=COPY_TIMEOUT)


def _ids(directory: Path) -> set[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return set()
    return {name.removesuffix(SUFFIX) for name in names
            if name.endswith(SUFFIX) and _ID.fullmatch(name.removesuffix(SUFFIX))}
