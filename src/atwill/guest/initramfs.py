"""The guest's initramfs: a gzip'd cpio (newc) archive written without root or cpio(1)."""

from __future__ import annotations

import gzip
import stat
from dataclasses import dataclass, field
from pathlib import PurePosixPath

# Fixed times and owners keep the archive the same from build to build.
MTIME = 0


@dataclass
class Archive:
    """Entries of a newc cpio archive, added in order; parents must come first."""

    entries: list[tuple[str, int, bytes, tuple[int, int]]] = field(default_factory=list)
    names: set[str] = field(default_factory=set)

    def directory(self, name: str, mode: int = 0o755) -> None:
        """Add a directory and any missing parents."""
        path = PurePosixPath(name.strip("/"))
        for part in reversed(path.parents[:-1]):
            self._add(str(part), stat.S_IFDIR | 0o755)
        self._add(str(path), stat.S_IFDIR | mode)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        """Add a regular file (its directory is created if needed)."""
        self._parent(name)
        self._add(name.strip("/"), stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        """Add a symbolic link name -> target."""
        self._parent(name)
        self._add(name.strip("/"), stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        """Add a character device node (the kernel needs /dev/console before devtmpfs)."""
        self._parent(name)
        self._add(name.strip("/"), stat.S_IFCHR | mode, rdev=(major, minor))

    def _parent(self, name: str) -> None:
        parent = str(PurePosixPath(name.strip("/")).parent)
        if parent != "." and parent not in self.names:
            self.directory(parent)

    def _add(self, name: str, mode: int, data: bytes = b"",
             rdev: tuple[int, int] = (0, 0)) -> None:
        if name in self.names:
            if stat.S_ISDIR(mode):
                return
            raise ValueError(f"{name} is already in the archive")
        self.names.add(name)
        self.entries.append((name, mode, data, rdev))

    def cpio(self) -> bytes:
        """The archive in cpio newc format."""
        out = bytearray()
        for ino, (name, mode, data, rdev) in enumerate(self.entries, start=1):
            out += _entry(name, ino, mode, data, rdev)
        out += _entry("TRAILER!!!", 0, 0, b"", (0, 0))
        return bytes(out)

    def gzip(self) -> bytes:
        """The archive, gzip-compressed with a fixed timestamp."""
        return gzip.compress(self.cpio(), compresslevel=9, mtime=MTIME)


def _entry(name: str, ino: int, mode: int, data: bytes, rdev: tuple[int, int]) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, MTIME, len(data),
              0, 0, rdev[0], rdev[1], len(encoded), 0)
    header = b"070701" + b"".join(f"{value:08x}".encode() for value in fields)
    return _pad(header + encoded) + _pad(data)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)
