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
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from sqlalchemy import select, update

from ...core.errors import PayloadTooLarge, ServiceUnavailable
from ..context import Controller
from ..db.image import Image

log = logging.getLogger("atwill.image")

TEMP_PREFIX = ".upload-"
# Statuses whose images own a data file; any other image's file is an orphan.
WITH_DATA = ("active", "deactivated")
SYNC_FILE_RANGE_WRITE = 2
# Uploads in progress in one controller process (two threads each): past it, 503.
MAX_UPLOADS = 32
_SLOTS = threading.BoundedSemaphore(MAX_UPLOADS)


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

    def __init__(self, root: Path, owner: str = "") -> None:
        self.root = root
        # Several controllers may share the directory (docs/controllers.md): each names
        # its uploads' temporary files, so that its start-up housekeeping touches its
        # own only.
        self.owner = owner

    @classmethod
    def of(cls, ctl: Controller) -> ImageStore:
        return cls(ctl.settings.path("images"), controller_tag(str(ctl.settings.state_dir)))

    def path(self, image_id: str) -> Path:
        return self.root / image_id

    def begin(self, image_id: str, limit: int) -> Upload:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Upload(self.root / f"{TEMP_PREFIX}{self.owner}-{image_id}-{uuid.uuid4().hex}",
                      limit)

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
        if not _SLOTS.acquire(blocking=False):
            raise ServiceUnavailable(f"{MAX_UPLOADS} uploads are in progress on this "
                                     "controller; retry later.", {"Retry-After": "5"})
        self._slot = True
        self.temp = temp
        self.limit = limit
        self.size = 0
        self.written = 0  # by the md5 lane, which alone writes
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()
        self.pending: deque[Future[None]] = deque()
        try:
            self.handle = open(temp, "xb")  # noqa: SIM115 - closed by complete() or abort()
        except BaseException:
            self._release()
            raise
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
        self._release()

    def _release(self) -> None:
        if self._slot:
            self._slot = False
            _SLOTS.release()

    def publish(self, final: Path) -> None:
        os.replace(self.temp, final)

    def abort(self) -> Future[None]:
        """Give the upload up without waiting (the event loop calls it): queued batches
        are dropped, and the write lane closes and removes the file once a batch in
        flight ends, so a slow disk stalls no other request. Done when that is done."""
        for job in self.pending:
            job.cancel()
        try:
            closing = self.lanes[0].submit(self._discard)
        except RuntimeError:  # the lanes were stopped (complete() ran): nothing in flight
            closing = Future()
            self._discard()
            closing.set_result(None)
        for lane in self.lanes:
            lane.shutdown(wait=False)
        return closing

    def _discard(self) -> None:
        try:
            self.handle.close()
            with contextlib.suppress(FileNotFoundError):
                self.temp.unlink()
        finally:
            self._release()


def controller_tag(state_dir: str) -> str:
    """This controller among those sharing the image directory (host and state dir)."""
    return hashlib.sha256(f"{socket.gethostname()}|{state_dir}".encode()).hexdigest()[:TAG]


TAG = 12
_UUID = 36


def temp_owner(name: str) -> tuple[str, str] | None:
    """(controller tag, image id) of an upload's temporary file; None for an older
    name without a tag (debris of any controller)."""
    rest = name[len(TEMP_PREFIX):]
    tag, image_id = rest[:TAG], rest[TAG + 1:TAG + 1 + _UUID]
    if not name.startswith(TEMP_PREFIX) or rest[TAG:TAG + 1] != "-" \
            or len(image_id) != _UUID or rest[TAG + 1 + _UUID:TAG + 2 + _UUID] != "-":
        return None
    return tag, image_id


def recover(ctl: Controller) -> list[str]:
    """Start-up housekeeping: requeue this controller's uploads left in 'saving' (the
    process that took them is gone) and delete upload debris.

    Run once when the controller starts, before it serves. Another controller sharing
    the database and the image directory may be receiving an upload right now: an image
    whose temporary file it names is left in 'saving', and its files are left alone.
    """
    done: list[str] = []
    store = ImageStore.of(ctl)
    entries = list(store.root.iterdir()) if store.root.is_dir() else []
    owners = {entry.name: temp_owner(entry.name) for entry in entries
              if entry.name.startswith(TEMP_PREFIX)}
    elsewhere = {owner[1] for owner in owners.values()
                 if owner is not None and owner[0] != store.owner}
    with ctl.db.session() as session:
        stuck = session.execute(update(Image).where(
            Image.status == "saving", Image.id.not_in(elsewhere)).values(status="queued"))
        if stuck.rowcount:
            done.append(f"requeued {stuck.rowcount} interrupted image upload(s)")
        keep = set(session.scalars(select(Image.id).where(
            Image.status.in_((*WITH_DATA, "saving")))))
    for entry in entries:
        if entry.name in owners:
            owner = owners[entry.name]
            gone = owner is None or owner[0] == store.owner
        else:
            gone = entry.name not in keep
        if gone and entry.is_file():
            entry.unlink(missing_ok=True)
            done.append(f"deleted {entry.name}")
    for line in done:
        log.info("image store: %s", line)
    return done
