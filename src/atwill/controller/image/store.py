"""Image data on disk under <state_dir>/images: streamed uploads and start-up housekeeping.

An upload is written to a hidden temporary file and renamed to the image id
only when the database says the image is active, so a file named after an
image always holds its complete data and anything else in the directory is
debris from an interrupted upload.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
from pathlib import Path

from sqlalchemy import select, update

from ...core.errors import PayloadTooLarge
from ..context import Controller
from ..db.image import Image

log = logging.getLogger("atwill.image")

TEMP_PREFIX = ".upload-"
# Statuses whose images own a data file; any other image's file is an orphan.
WITH_DATA = ("active", "deactivated")


class ImageStore:
    """The directory holding one file per image with data."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def of(cls, ctl: Controller) -> ImageStore:
        return cls(ctl.settings.path("images"))

    def path(self, image_id: str) -> Path:
        return self.root / image_id

    def begin(self, image_id: str, limit: int) -> Upload:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Upload(self.root / f"{TEMP_PREFIX}{image_id}-{uuid.uuid4().hex}", limit)

    def remove(self, image_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(image_id).unlink()


class Upload:
    """One upload in progress: a temporary file and the hashes of what was written."""

    def __init__(self, temp: Path, limit: int) -> None:
        self.temp = temp
        self.limit = limit
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()
        self.handle = open(temp, "xb")  # noqa: SIM115 - closed by finish() or abort()

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLarge(f"Image data exceeds the size limit of {self.limit} bytes.")
        self.md5.update(data)
        self.sha512.update(data)
        self.handle.write(data)

    def complete(self) -> None:
        """Flush the data to disk before the image may become active."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()

    def publish(self, final: Path) -> None:
        os.replace(self.temp, final)

    def abort(self) -> None:
        self.handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()


def recover(ctl: Controller) -> list[str]:
    """Start-up housekeeping: requeue images stuck in 'saving', delete upload debris.

    Run once when the controller starts, before it serves: any upload that was
    in flight then died with the previous process, so no 'saving' is genuine.
    """
    done: list[str] = []
    with ctl.db.session() as session:
        stuck = session.execute(
            update(Image).where(Image.status == "saving").values(status="queued"))
        if stuck.rowcount:
            done.append(f"requeued {stuck.rowcount} interrupted image upload(s)")
        keep = set(session.scalars(select(Image.id).where(Image.status.in_(WITH_DATA))))
    store = ImageStore.of(ctl)
    if store.root.is_dir():
        for entry in store.root.iterdir():
            if entry.name not in keep and entry.is_file():
                entry.unlink(missing_ok=True)
                done.append(f"deleted {entry.name}")
    for line in done:
        log.info("image store: %s", line)
    return done
