"""JSON request bodies at the API edge: bounded depth, text that a database can store.

Python's json module recurses once per nesting level, so a body nested 10,000
deep raises RecursionError; and a lone surrogate escape ("\\ud800") is valid
JSON that decodes to a str no database driver can encode. check() finds both
in one pass over the raw bytes, looking only at brackets, quotes and
backslashes, so it costs little even for a body at the size limit.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import BadRequest

# Deeper than any body the OpenStack APIs take (Glance's JSON patch is about 4 deep).
MAX_DEPTH = 32

_SPECIAL = re.compile(rb'[\[\]{}"\\]')
_OPEN, _CLOSE, _QUOTE, _BACKSLASH = b"[{", b"]}", ord('"'), ord("\\")


def _code(raw: bytes, at: int) -> int | None:
    """The code unit of a \\uXXXX escape whose backslash is at `at`, or None."""
    if raw[at + 1:at + 2] != b"u":
        return None
    try:
        return int(raw[at + 2:at + 6], 16)
    except ValueError:
        return None  # malformed: json.loads will refuse it


def _escape_end(raw: bytes, at: int) -> int:
    """Where the escape starting at `at` ends; a lone surrogate is a 400."""
    code = _code(raw, at)
    if code is None or not 0xD800 <= code <= 0xDFFF:
        return at + 2
    if code <= 0xDBFF:
        low = _code(raw, at + 6) if raw[at + 6:at + 7] == b"\\" else None
        if low is not None and 0xDC00 <= low <= 0xDFFF:
            return at + 12  # a valid pair: one astral character
    raise BadRequest("Invalid input: a string holds a lone surrogate escape "
                     f"({raw[at:at + 6].decode('ascii', 'replace')}), which is not text.")


def check(raw: bytes, max_depth: int = MAX_DEPTH) -> None:
    """Refuse nesting deeper than max_depth and lone surrogate escapes, with a 400."""
    if b"\x00" in raw:
        # JSON text is UTF-8 (RFC 8259); UTF-16 or -32, which json.loads would guess,
        # always holds NUL bytes, and the scan below reads UTF-8 only.
        raise BadRequest("Malformed request body: JSON must be encoded as UTF-8.")
    try:
        # json.loads decodes bytes with surrogatepass, so encoded surrogates would pass.
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("Malformed request body: it is not valid UTF-8.") from None
    depth, in_string, skip = 0, False, 0
    for match in _SPECIAL.finditer(raw):
        at = match.start()
        if at < skip:
            continue  # the character is part of an escape already read
        char = raw[at]
        if in_string:
            if char == _QUOTE:
                in_string = False
            elif char == _BACKSLASH:
                skip = _escape_end(raw, at)
        elif char == _QUOTE:
            in_string = True
        elif char in _OPEN:
            depth += 1
            if depth > max_depth:
                raise BadRequest(f"Invalid input: JSON nested deeper than {max_depth} levels.")
        elif char in _CLOSE:
            depth -= 1


def _constant(name: str) -> Any:
    raise BadRequest(f"Invalid input: {name} is not a JSON number.")


def finite(text: str) -> float:
    """A JSON number with a fraction or exponent as a float; one beyond a double's range
    (1e999 reads as infinity, which no JSON encoder or database column takes back) is a
    400."""
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"Invalid input: the number {text[:24]} is out of range.")
    return value


def loads(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of raw, or a 400 saying what is wrong with it."""
    check(raw, max_depth)
    try:
        return json.loads(raw, parse_constant=_constant, parse_float=finite)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Malformed request body: it is not valid JSON.") from None
