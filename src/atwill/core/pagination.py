"""Limit/marker pagination over an ordered list, the way Nova's *_links expect it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from .errors import BadRequest

T = TypeVar("T")
MAX_LIMIT = 1000


def parse_limit(text: str | None) -> int:
    """The page size asked for; absent means the server's maximum."""
    if text is None:
        return MAX_LIMIT
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"limit param must be an integer, got {text!r}.") from None
    if value < 0:
        raise BadRequest("limit param must be positive.")
    return min(value, MAX_LIMIT)


def page(items: Sequence[T], key: Callable[[T], str], limit: int,
         marker: str | None) -> tuple[list[T], str | None]:
    """The items after marker (at most limit) and the marker of the next page, if any.

    A next marker is only given when more items remain, so clients that follow
    links never loop on the same page.
    """
    start = 0
    if marker is not None:
        keys = [key(item) for item in items]
        if marker not in keys:
            raise BadRequest(f"marker [{marker}] not found")
        start = keys.index(marker) + 1
    chunk = list(items[start:start + limit])
    more = start + limit < len(items)
    return chunk, (key(chunk[-1]) if more and chunk else None)
