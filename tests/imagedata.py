"""Image data that passes the upload's format check, for tests that need some bytes."""

from __future__ import annotations

import os
import struct


def qcow2_bytes(size: int) -> bytes:
    """size bytes starting with a clean qcow2 v3 header (no backing or data file)."""
    header = bytearray(112)
    header[0:4] = b"QFI\xfb"
    struct.pack_into(">IQ", header, 4, 3, 0)
    struct.pack_into(">I", header, 100, 104)
    return bytes(header) + os.urandom(max(0, size - len(header)))
