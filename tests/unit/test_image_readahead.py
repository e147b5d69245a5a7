"""Image downloads: the requested span in 1 MiB chunks read ahead, the file closed after."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from atwill.controller.image import readahead


async def collect(path: Path, offset: int, length: int) -> tuple[list[bytes], bool]:
    handle = open(path, "rb")  # noqa: SIM115 - read_ahead closes it
    chunks = [chunk async for chunk in readahead.read_ahead(handle, offset, length)]
    return chunks, handle.closed


def test_a_span_comes_in_bounded_chunks_and_the_file_is_closed(tmp_path: Path) -> None:
    data = os.urandom(3 * readahead.READ_CHUNK + 5)
    (path := tmp_path / "image").write_bytes(data)
    chunks, closed = asyncio.run(collect(path, 0, len(data)))
    assert b"".join(chunks) == data and closed
    assert [len(c) for c in chunks] == [readahead.READ_CHUNK] * 3 + [5]
    chunks, closed = asyncio.run(collect(path, 7, readahead.READ_CHUNK + 1))
    assert b"".join(chunks) == data[7:7 + readahead.READ_CHUNK + 1] and closed
    assert asyncio.run(collect(path, 0, 0)) == ([], True)


def test_a_file_shorter_than_its_size_ends_the_stream(tmp_path: Path) -> None:
    (path := tmp_path / "image").write_bytes(b"short")
    assert asyncio.run(collect(path, 0, 100)) == ([b"short"], True)


def test_a_send_cut_short_closes_the_file_after_the_read_ahead(tmp_path: Path) -> None:
    (path := tmp_path / "image").write_bytes(os.urandom(2 * readahead.READ_CHUNK))

    async def first_only() -> bool:
        handle = open(path, "rb")  # noqa: SIM115 - read_ahead closes it
        stream = readahead.read_ahead(handle, 0, 2 * readahead.READ_CHUNK)
        assert len(await anext(stream)) == readahead.READ_CHUNK
        await stream.aclose()  # the client went away with the second read in flight
        return handle.closed

    assert asyncio.run(first_only())
