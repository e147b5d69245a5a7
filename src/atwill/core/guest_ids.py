"""Numeric user and group ids for unprivileged QEMU processes, one user per instance.

QEMU becomes `uid:gid` (-runas) once its files are open. A user of its own per instance
means one escaped guest cannot open, trace or signal another instance's QEMU or disk; the
group is the base image's, so the instances of one image can read that image and nothing
else. The ids have no /etc/passwd entry, as with container user namespaces, and lie in a
block above the ranges others hand out (subordinate ids from 100000, systemd-nspawn's
524288-1879048191, SSSD's 200000-2000200000) and below 2**31, which some tools print as
negative. The node also skips any id its name service knows (confine.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection

BASE = 0x78000000  # 2013265920
SPAN = 1 << 24  # up to 2030043135


def in_block(value: int) -> bool:
    """Whether an id is one of ours."""
    return BASE <= value < BASE + SPAN


def pick(key: str, taken: Collection[int] | Callable[[int], bool]) -> int:
    """The id for key: a hash of it in our block, probing past ids already taken (a set,
    or a test that says whether an id is taken)."""
    is_taken = taken if callable(taken) else taken.__contains__
    offset = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % SPAN
    for step in range(SPAN):
        candidate = BASE + (offset + step) % SPAN
        if not is_taken(candidate):
            return candidate
    raise RuntimeError("no free guest id")
