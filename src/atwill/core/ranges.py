"""HTTP Range header parsing for downloads (one byte range, as Glance serves)."""

from __future__ import annotations


class Unsatisfiable(ValueError):
    """The Range cannot be served for this size (a 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) bytes asked for, or None for the whole body.

    Multiple ranges and malformed headers are refused rather than ignored so a
    client asking for a slice never silently receives a whole disk image.
    """
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        raise Unsatisfiable(f"Unsupported Range {header!r}: only 'bytes=' ranges are served.")
    if "," in spec:
        raise Unsatisfiable("Only a single byte range is supported.")
    first_text, dash, last_text = spec.strip().partition("-")
    first_text, last_text = first_text.strip(), last_text.strip()
    if not dash or not (first_text or last_text) or not all(
            t.isdigit() for t in (first_text, last_text) if t):
        raise Unsatisfiable(f"Malformed Range {header!r}.")
    if not first_text:
        length = int(last_text)
        if length == 0 or size == 0:
            raise Unsatisfiable(f"Range {header!r} is not satisfiable for {size} bytes.")
        return max(size - length, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last < first:
        raise Unsatisfiable(f"Malformed Range {header!r}: the end precedes the start.")
    if first >= size:
        raise Unsatisfiable(f"Range {header!r} is not satisfiable for {size} bytes.")
    return first, min(last, size - 1)
