"""A build's scratch directory, removed only once nothing is mounted inside it.

mmdebstrap in root mode mounts the host's /proc, /sys and /dev (with /dev/pts and /dev/shm)
inside the tree it bootstraps and unmounts them when it ends. Killed (a timeout's SIGKILL,
a power cut, an operator's kill -9) it leaves them mounted, and removing the directory then
walks into the host's /dev and deletes what is there (seen here: the host's /dev/shm
emptied, PostgreSQL's shared memory with it). So a scratch directory is unmounted, deepest
first, before it is removed, and an interrupted build's directory is swept the same way by
the next build under the cache lock.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from atwill.core.mountinfo import mounts_under
from atwill.hostlib.run import run

log = logging.getLogger(__name__)

PREFIX = ".build-"
MOUNTINFO = Path("/proc/self/mountinfo")


class StillMounted(RuntimeError):
    """A scratch directory kept because something inside it could not be unmounted."""


@contextmanager
def scratch_dir(parent: Path) -> Iterator[Path]:
    """A new directory under parent for one build, unmounted and removed afterwards."""
    path = Path(tempfile.mkdtemp(dir=parent, prefix=PREFIX))
    try:
        yield path
    finally:
        remove(path)


def remove(path: Path) -> None:
    """Unmount whatever is mounted at or under path, deepest first, then delete it.

    A lazy unmount detaches a busy mount from the tree at once. If a mount is still there
    afterwards the directory is left as it is and StillMounted is raised: deleting through
    a mount deletes the files of whatever it shows.
    """
    path = path.resolve()
    for point in mounts_under(MOUNTINFO.read_text(), str(path)):
        run(["umount", "--lazy", point], check=False)
    left = mounts_under(MOUNTINFO.read_text(), str(path))
    if left:
        raise StillMounted(f"{path} not removed: still mounted at {', '.join(left)}")
    shutil.rmtree(path, ignore_errors=False)


def sweep(parent: Path) -> None:
    """Remove the scratch directories interrupted builds left in parent.

    The caller holds the cache's build lock, so no build is using any of them.
    """
    for path in sorted(parent.glob(f"{PREFIX}*")):
        if not path.is_dir() or path.is_symlink():
            continue
        log.info("removing %s, left by an interrupted build", path)
        try:
            remove(path)
        except (StillMounted, OSError) as error:
            log.warning("could not remove %s: %s", path, error)
