"""The controllers of one cloud as agents are told of them: which URLs, in what order, and
what an agent accepts.

The controllers register themselves in the database (controller/controllers.py); the
desired state lists the configured `controller_urls` (a seed, or a load balancer's name
that is no controller) and then every live registered controller. The order must be the
same whichever controller builds it, or an agent would rewrite its agent.yaml each time
it fails over; so registered URLs are sorted, not put in the order they started.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

MAX_URLS = 16  # controllers an agent keeps; a longer list is refused whole
MAX_URL_LENGTH = 255


def normal(url: str) -> str:
    return url.strip().rstrip("/")


def valid(url: Any) -> bool:
    """An https URL with a host and nothing an agent would follow elsewhere: no user, no
    path, query or fragment, no spaces or control characters, at most MAX_URL_LENGTH."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        return False
    if not url.isprintable() or any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        return False
    return (parts.scheme == "https" and bool(parts.hostname) and "@" not in parts.netloc
            and parts.path in ("", "/") and not parts.query and not parts.fragment)


def accepted(urls: Any) -> list[str] | None:
    """What an agent keeps of the list a controller sent: every URL normalised, in its
    order, without repeats; None (keep what it had) for no list, an empty one, one
    longer than MAX_URLS or one holding any URL that is not valid()."""
    if not isinstance(urls, list) or not urls or len(urls) > MAX_URLS:
        return None
    if not all(valid(url) for url in urls):
        return None
    return unique(normal(url) for url in urls)


def merged(configured: Iterable[str], registered: Iterable[str], own: str) -> list[str]:
    """The list a controller gives its agents: the configured URLs in their order, then
    the registered live ones sorted, then its own URL if neither named it (before its
    first registration); only valid() ones (an agent refuses a list holding any other),
    at most MAX_URLS."""
    listed = unique(normal(u) for u in configured if valid(normal(u)))
    listed += sorted({normal(u) for u in registered if valid(normal(u))} - set(listed))
    if valid(normal(own)) and normal(own) not in listed:
        listed.append(normal(own))
    return listed[:MAX_URLS]


def unique(urls: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for url in urls:
        if url not in seen:
            seen.append(url)
    return seen
