"""Tenant text at the API edge: names without control characters, errors that do not echo.

Every service checks names with clean_name, and quotes a bad value in an error
message with shown(), so a 64 KB value never becomes a 64 KB error.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from .errors import BadRequest

# How much of a bad value an error message quotes.
SHOWN = 64


def shown(value: Any, limit: int = SHOWN) -> str:
    """repr(value), cut to about limit characters with a marker when longer."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…(+{len(text) - limit} chars)"


def has_control(value: str) -> bool:
    """Whether value holds a control character (NUL, CR, LF, ESC, DEL…) or a lone surrogate."""
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


def clean_name(value: Any, field: str = "name", max_length: int = 255,
               required: bool = False) -> str | None:
    """A name as the OpenStack services accept it: a string of printable text, or a 400."""
    if value is None:
        if required:
            raise BadRequest(f"Invalid input: '{field}' is a required property.")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Invalid input for field '{field}': {shown(value)} is not a string.")
    if len(value) > max_length:
        raise BadRequest(f"Invalid input for field '{field}': longer than {max_length} "
                         "characters.")
    if has_control(value):
        raise BadRequest(f"Invalid input for field '{field}': {shown(value)} contains a "
                         "control character.")
    return value
