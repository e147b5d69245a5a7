"""Fernet key repository on disk, rotated the way Keystone rotates it.

Key 0 is staged (the next primary), the highest number is the primary that
encrypts, and every key in between still decrypts tokens issued before the
last rotation.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet


class KeyRepository:
    def __init__(self, directory: Path, max_active: int = 3) -> None:
        self.directory = directory
        self.max_active = max(max_active, 2)
        self._stamp: tuple[tuple[int, int], ...] = ()
        self._fernet: MultiFernet | None = None

    def exists(self) -> bool:
        return self.directory.is_dir() and any(self._numbers())

    def _numbers(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit())

    def _write(self, number: int, key: bytes) -> None:
        tmp = self.directory / f".{number}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        tmp.replace(self.directory / str(number))

    def create(self) -> bool:
        """Make the staged and the first primary key; False when keys exist already."""
        if self.exists():
            return False
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._write(0, Fernet.generate_key())
        self._write(1, Fernet.generate_key())
        return True

    def rotate(self) -> int:
        """Promote the staged key, stage a new one, drop the oldest; returns the new primary."""
        numbers = self._numbers()
        if not numbers:
            raise RuntimeError(f"no keys in {self.directory}; run 'atwill init'")
        primary = max(numbers) + 1
        (self.directory / "0").replace(self.directory / str(primary))
        self._write(0, Fernet.generate_key())
        numbers = self._numbers()
        for old in [n for n in numbers if n != 0][: -(self.max_active - 1) or None]:
            (self.directory / str(old)).unlink()
        return primary

    def stamp(self) -> tuple[tuple[int, int], ...]:
        """(key number, mtime) of every key: changes whenever a key is added, rotated or
        removed (by any process)."""
        return tuple((n, (self.directory / str(n)).stat().st_mtime_ns)
                     for n in self._numbers())

    def fernet(self) -> MultiFernet:
        """Primary first, then the others; reloaded when the files change."""
        stamp = self.stamp()
        if self._fernet is None or stamp != self._stamp:
            numbers = [n for n, _ in stamp]
            order = sorted((n for n in numbers if n != 0), reverse=True) + [0]
            keys = [Fernet((self.directory / str(n)).read_bytes().strip()) for n in order]
            self._fernet = MultiFernet(keys)
            self._stamp = stamp
        return self._fernet
