"""A file in the state directory that tells the controller's worker processes "changed".

Any worker appends a byte after it commits a change the others cache or wait on; the
others compare the file's (inode, size) with what they last saw, with one stat() and
no message bus. Appends are atomic between processes and the size only grows, so no
change is missed; past MAX_BYTES the file is replaced by an empty one, which changes
the inode, so that change too is seen.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_BYTES = 1 << 20

# (inode, size, change time): the time only tells a reused inode from its last use.
Stamp = tuple[int, int, int] | None


class WorkerStamp:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Stamp:
        """What the file looks like now (None: not made yet)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_ctime_ns

    def touch(self) -> Stamp:
        """Say "changed" to every process reading this file; what it looks like after.

        An error (the state directory removed under a test) is not the committer's
        problem: the others then see the change within the caches' own TTL.
        """
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError:
            return None
        try:
            os.write(fd, b".")
            st = os.fstat(fd)
        except OSError:
            return None
        finally:
            os.close(fd)
        if st.st_size > MAX_BYTES:
            self._restart()
            return self.read()
        return st.st_ino, st.st_size, st.st_ctime_ns

    def _restart(self) -> None:
        fresh = self.path.with_name(f"{self.path.name}.{os.getpid()}")
        try:
            fresh.touch(mode=0o600)
            os.replace(fresh, self.path)
        except OSError:
            fresh.unlink(missing_ok=True)
