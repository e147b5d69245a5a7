"""Image data on disk under <state_dir>/images: streamed uploads and start-up housekeeping.

An upload is written to a hidden temporary file and renamed to the image id
only when the database says the image is active, so a file named after an
image always holds its complete data and anything else in the directory is
debris from an interrupted upload.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from sqlalchemy import select, update

from ...core.errors import PayloadTooLarge
from ..context import Controller
from ..db.image import Image

log = logging.getLogger("atwill.image")

TEMP_PREFIX = ".upload-"
# Statuses whose images own a data file; any other image's file is an orphan.
WITH_DATA = ("active", "deactivated")
SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Callable[..., int] | None:
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # not Linux: the fsync at the end does it all
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return call  # type: ignore[no-any-return]


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a range to disk now, so that the one fsync at the end of an upload
    waits for the last batches only instead of the whole image (about 12 % of an upload's
    time at 128 MiB); advisory, errors are the fsync's to report."""
    call = _sync_file_range()
    if call is not None:
        call(fd, offset, length, SYNC_FILE_RANGE_WRITE)


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
    """One upload in progress: a temporary file and the hashes of what was written.

    Data arrives in batches (feed). Each upload has two lanes, one thread each: md5
    and the file write in one, sha512 in the other; hashlib and file writes release
    the GIL for buffers this large, so both hashes run while the event loop receives
    the next batches. A lane takes its batches in order, so data and hashes stay in
    order however many batches wait.
    """

    def __init__(self, temp: Path, limit: int) -> None:
        self.temp = temp
        self.limit = limit
        self.size = 0
        self.written = 0  # by the md5 lane, which alone writes
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()
        self.pending: deque[Future[None]] = deque()
        self.handle = open(temp, "xb")  # noqa: SIM115 - closed by complete() or abort()
        self.lanes = (ThreadPoolExecutor(1, thread_name_prefix="image-md5"),
                      ThreadPoolExecutor(1, thread_name_prefix="image-sha512"))

    def feed(self, data: bytes) -> None:
        """Queue data to be hashed and written (PayloadTooLarge past the limit)."""
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLarge(f"Image data exceeds the size limit of {self.limit} bytes.")
        self.pending.append(self.lanes[0].submit(self._md5_and_write, data))
        self.pending.append(self.lanes[1].submit(self.sha512.update, data))

    def settle(self) -> None:
        """Wait for every queued batch; raise the first error one of them raised."""
        done, _ = wait(self.pending)
        self.pending.clear()
        for future in done:
            future.result()

    def _md5_and_write(self, data: bytes) -> None:
        self.md5.update(data)
        self.handle.write(data)
        self.handle.flush()
        start_writeback(self.handle.fileno(), self.written, len(data))
        self.written += len(data)

    def complete(self) -> None:
        """Flush the data to disk (one fsync) before the image may become active."""
        try:
            self.settle()
        finally:
            self._stop_lanes()
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()

    def _stop_lanes(self) -> None:
        # A batch still being written would write to a closed (or reused) descriptor.
        for lane in self.lanes:
            lane.shutdown(wait=True, cancel_futures=True)

    def publish(self, final: Path) -> None:
        os.replace(self.temp, final)

    def abort(self) -> None:
        self._stop_lanes()
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
