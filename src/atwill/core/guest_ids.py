"""Numeric user and group ids for unprivileged QEMU processes, one user per instance.

QEMU becomes `uid:gid` (-runas) once its files are open. A user of its own per instance
means one escaped guest cannot open, trace or signal another instance's QEMU or disk; the
group is the base image's, so the instances of one image can read that image and nothing
else. The ids lie in a block no distribution hands out (far above the 100000+ subordinate
ids of containers) and have no /etc/passwd entry, as with container user namespaces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

BASE = 0x41000000
SPAN = 1 << 24


def in_block(value: int) -> bool:
    """Whether an id is one of ours."""
    return BASE <= value < BASE + SPAN


def pick(key: str, taken: Collection[int]) -> int:
    """The id for key: a hash of it in our block, probing past ids already taken."""
    offset = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % SPAN
    for step in range(SPAN):
        candidate = BASE + (offset + step) % SPAN
        if candidate not in taken:
            return candidate
    raise RuntimeError("no free guest id")
