"""Image downloads read ahead: the next chunk is read in a thread while this one is sent.

Not sendfile: the controller's TLS is Python's ssl under asyncio/uvloop, which encrypts
in user space through a memory BIO, so file pages must pass through the process anyway;
kernel TLS would need a socket BIO and OP_ENABLE_KTLS (Python 3.12+), and uvicorn has no
zero-copy send. Each chunk is read once (os.pread) and handed to the transport as is.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import BinaryIO

# One read in flight per download; 256 KiB chunks halved the rate (one thread hop each).
READ_CHUNK = 1024 * 1024
READERS = 8

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def readers() -> ThreadPoolExecutor:
    """Made on first use, so a forked worker process never holds its parent's threads."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(READERS, thread_name_prefix="image-read")
        return _pool


def _forget() -> None:
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget)


async def read_ahead(handle: BinaryIO, offset: int, length: int) -> AsyncIterator[bytes]:
    """length bytes from offset in chunks, then the handle closed (however the send ends)."""
    if length <= 0:
        handle.close()
        return
    fd, pool = handle.fileno(), readers()
    reading = pool.submit(os.pread, fd, min(READ_CHUNK, length), offset)
    try:
        while True:
            data = await asyncio.wrap_future(reading)
            offset, length = offset + len(data), length - len(data)
            if not data:
                return  # the file is shorter than the image's size says
            if length > 0:
                reading = pool.submit(os.pread, fd, min(READ_CHUNK, length), offset)
            yield data
            if length <= 0:
                return
    finally:
        # A read still running would read from a closed (or reused) descriptor.
        wait([reading])
        handle.close()
