"""Image uploads hash and write in their own threads, in order, and clean up on failure."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from atwill.controller.image import store
from atwill.controller.image.store import ImageStore, Upload
from atwill.core.errors import PayloadTooLarge, ServiceUnavailable


def begin(tmp_path: Path, limit: int = 1 << 30) -> Upload:
    return ImageStore(tmp_path / "images").begin("image", limit)


class HeldHash:
    """A hash whose updates wait for a gate and note the thread they ran in."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.gate, self.threads = inner, threading.Event(), []

    def update(self, data: bytes) -> None:
        self.threads.append(threading.get_ident())
        assert self.gate.wait(30)
        self.inner.update(data)


def test_batches_of_any_size_keep_order_size_and_hashes(tmp_path: Path) -> None:
    data = os.urandom(3 << 20) + b"tail"
    upload = begin(tmp_path)
    for start, end in ((0, 1), (1, (1 << 20) + 7), ((1 << 20) + 7, 3 << 20), (3 << 20, None)):
        upload.feed(data[start:end])
    upload.complete()
    assert upload.temp.read_bytes() == data
    assert upload.size == len(data)
    assert upload.md5.hexdigest() == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert upload.sha512.hexdigest() == hashlib.sha512(data).hexdigest()


def test_feed_returns_while_the_data_is_still_being_hashed(tmp_path: Path) -> None:
    upload = begin(tmp_path)
    held = HeldHash(upload.md5)
    upload.md5 = held  # type: ignore[assignment]
    upload.feed(b"a" * 4096)
    upload.feed(b"b" * 4096)
    assert not upload.pending[0].done()  # the caller (the event loop) was not held
    held.gate.set()
    upload.complete()
    assert threading.get_ident() not in held.threads
    assert held.inner.hexdigest() == hashlib.md5(b"a" * 4096 + b"b" * 4096).hexdigest()
    assert upload.temp.read_bytes() == b"a" * 4096 + b"b" * 4096


def test_data_past_the_limit_is_refused_before_it_is_queued(tmp_path: Path) -> None:
    upload = begin(tmp_path, limit=10)
    upload.feed(b"12345")
    with pytest.raises(PayloadTooLarge):
        upload.feed(b"678901")
    assert len(upload.pending) == 2  # only the first batch: one job per lane
    upload.abort().result(5)
    assert not upload.temp.exists()


def test_abort_returns_at_once_and_the_file_goes_after_the_batch_in_flight(
        tmp_path: Path) -> None:
    """The event loop calls abort: it must not wait for a slow disk (every request of the
    worker would); the write lane closes and removes the file once its batch ends."""
    upload = begin(tmp_path)
    held = HeldHash(upload.md5)
    upload.md5 = held  # type: ignore[assignment]
    for _ in range(3):
        upload.feed(b"x" * 8192)
    while not held.threads:  # the first batch is in flight, held
        threading.Event().wait(0.01)
    closing = upload.abort()
    assert not closing.done() and upload.temp.exists()  # returned while the batch waits
    held.gate.set()
    closing.result(30)
    assert upload.handle.closed and not upload.temp.exists()
    jobs = list(upload.pending)  # md5+write, sha512, md5+write, ...: the held lane's rest
    assert [jobs[2].cancelled(), jobs[4].cancelled()] == [True, True]


def test_uploads_past_the_limit_are_refused_with_503_until_one_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "_SLOTS", threading.BoundedSemaphore(2))
    first, second = begin(tmp_path), ImageStore(tmp_path / "images").begin("other", 10)
    with pytest.raises(ServiceUnavailable) as refused:
        ImageStore(tmp_path / "images").begin("third", 10)
    assert refused.value.headers == {"Retry-After": "5"}
    assert sorted(p.name.split("-")[2] for p in (tmp_path / "images").iterdir()) == [
        "image", "other"]  # the refused one left no file
    first.abort().result(5)
    second.complete()
    third = ImageStore(tmp_path / "images").begin("third", 10)
    third.abort().result(5)
    fourth, fifth = (ImageStore(tmp_path / "images").begin(n, 10) for n in ("4", "5"))
    for upload in (fourth, fifth):
        upload.abort().result(5)


def test_a_failed_write_is_raised_by_complete(tmp_path: Path) -> None:
    upload = begin(tmp_path)
    upload.handle.close()  # as a disk error would, the lane's write fails
    upload.feed(b"data" * 1024)
    with pytest.raises(ValueError, match="closed file"):
        upload.complete()
    assert upload.abort().done()  # the lanes were stopped: removed at once
    assert not upload.temp.exists()


def test_each_batch_is_sent_to_disk_as_written(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ranges: list[tuple[int, int]] = []
    real = store.start_writeback

    def noted(fd: int, offset: int, length: int) -> None:
        ranges.append((offset, length))
        real(fd, offset, length)

    monkeypatch.setattr(store, "start_writeback", noted)
    upload = begin(tmp_path)
    for size in (3, 70000, 1 << 20):
        upload.feed(b"z" * size)
    upload.complete()
    assert ranges == [(0, 3), (3, 70000), (70003, 1 << 20)]
    assert upload.temp.stat().st_size == 70003 + (1 << 20)
