"""Which mount points lie at or under a directory, read from /proc/self/mountinfo's text."""

from __future__ import annotations

import os


def unescape(field: str) -> str:
    """A mountinfo path field with its octal escapes (space, tab, newline, backslash) undone."""
    out, i = [], 0
    while i < len(field):
        digits = field[i + 1:i + 4]
        if field[i] == "\\" and len(digits) == 3 and all(c in "01234567" for c in digits):
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(mountinfo: str, directory: str) -> list[str]:
    """The mount points at or below directory, deepest first (the order to unmount them)."""
    top = os.path.normpath(directory)
    found = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        point = os.path.normpath(unescape(fields[4]))
        if point == top or point.startswith(top.rstrip("/") + "/"):
            found.append(point)
    # Later mounts stack on earlier ones at the same point: unmount the latest first.
    ordered = list(reversed(found))
    return sorted(ordered, key=lambda point: point.count("/"), reverse=True)
