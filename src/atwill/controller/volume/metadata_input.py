"""Cinder's metadata maps: string keys of 1-255 characters, string values of <= 255."""

from __future__ import annotations

from typing import Any

from ...core.errors import BadRequest
from ...core.text import clean_name

MAX_ITEMS = 128


def metadata(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise BadRequest("Malformed request body: metadata must be an object.")
    if len(value) > MAX_ITEMS:
        raise BadRequest(f"Invalid metadata: at most {MAX_ITEMS} items are allowed.")
    out = {}
    for key, item in value.items():
        if not key:
            raise BadRequest("Invalid metadata: Metadata property key blank.")
        clean_name(key, "metadata key", 255)
        if not isinstance(item, str):
            raise BadRequest(f"Invalid metadata: the value of {key[:64]!r} must be a string.")
        out[key] = clean_name(item, "metadata value", 255) or ""
    return out
