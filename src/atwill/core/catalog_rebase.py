"""Which URLs a controller answers in the catalog of a token (docs/controllers.md,
"The catalog and clouds.yaml").

Several controllers share one database, so one set of endpoint rows: `atwill init` on the
first controller wrote them with its own URL. keystoneauth (and so openstacksdk and the
`openstack` CLI) takes the FIRST endpoint of a service that matches the interface and
region (ServiceCatalog.endpoint_data_for) and never tries another, so listing every
controller in the catalog gives no failover. Instead each controller answers the catalog
with its own URL: a client keeps using the controller it authenticated with, and a
client that reached a controller through a load balancer or a DNS name keeps using that
name when it is configured as `public_endpoint`.

The rule: an endpoint whose origin (scheme://host[:port]) is one of the cloud's
controllers is answered with this controller's origin and the row's path:
`public_endpoint` on the public interface when set, else this controller's public URL;
internal and admin always this controller's own URL (a client there keeps to that
controller). The controllers known are this one's public URL, `public_endpoint`, the
URL the cloud's `init` wrote the rows with (an added controller's bundle names it) and
the URLs controllers registered in the database (controller/identity/tokens.py); NOT
every URL of `controller_urls`, which may name a seed or a load balancer that is no
controller (core/controller_urls.py): rows an operator pointed at a load balancer stay
as stored. A row on a host that is not loopback is never rebased to a loopback URL (a
controller without public_host answers 127.0.0.1, which no other machine reaches). An
endpoint on any other host (an operator's own service) is answered as stored, and
/v3/endpoints shows the rows as stored (Keystone's API for editing them).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_LENGTH = 255
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


def origin(url: str) -> str | None:
    """scheme://netloc of an http(s) URL, lowercased; None when it is not one."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except (ValueError, AttributeError):
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def host_name_valid(host: str) -> bool:
    """An IP literal or a DNS name (letters, digits and hyphens in dot-separated labels
    of at most 63, 253 in all): nothing a shell, YAML or a URL would read otherwise."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host.lower().removesuffix(".")
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


def loopback(host: str | None) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower().removesuffix(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_public_endpoint(url: str) -> str:
    """The setting `public_endpoint`, normalised (no trailing slash); ValueError saying why
    when it is not an http(s) origin: a load balancer's or DNS name's scheme, host and
    port, no path (the controllers' routes start at /), user, query or fragment."""
    text = url.strip().rstrip("/")
    if not text:
        return ""
    problem = None
    if len(text) > MAX_LENGTH or not text.isprintable() or any(c.isspace() for c in text):
        problem = f"at most {MAX_LENGTH} printable characters without spaces"
    else:
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            problem = "an http(s) URL with a host"
        elif not host_name_valid(parts.hostname):
            problem = "a host that is an IP address or a DNS name"
        elif "@" in parts.netloc or parts.path or parts.query or parts.fragment:
            problem = ("scheme, host and port only (no user, path, query or fragment: "
                       "the load balancer must pass paths unchanged)")
    if problem:
        raise ValueError(f"public_endpoint: expected {problem}, got {url!r}")
    return text


@dataclass(frozen=True)
class Rebase:
    """How one controller answers the catalog's endpoint URLs."""

    own: str  # this controller's public URL (origin)
    public: str  # what the public interface gets: public_endpoint, else own
    known: frozenset[str]  # the origins of the cloud's controllers

    def url(self, stored: str, interface: str) -> str:
        return _rebased(self, stored, interface)


@functools.lru_cache(maxsize=1024)
def _rebased(rebase: Rebase, stored: str, interface: str) -> str:
    """Rebase.url, remembered: a token's catalog asks the same few URLs every time."""
    found = origin(stored)
    if found is None or found not in rebase.known:
        return stored
    text = stored.strip()
    parts = urlsplit(text)
    target = rebase.public if interface == "public" else rebase.own
    if loopback(urlsplit(target).hostname) and not loopback(parts.hostname):
        return stored
    return target + text[len(parts.scheme) + 3 + len(parts.netloc):]


def rebase_for(own_url: str, public_endpoint: str, controllers: Iterable[str]) -> Rebase:
    """The Rebase of a controller whose public URL is own_url, with the setting
    public_endpoint (may be empty) and the URLs known to be the cloud's controllers (the
    rows' URL its init wrote, registered ones; not a configured list that may name a
    load balancer)."""
    own = origin(own_url) or own_url.rstrip("/")
    public = origin(public_endpoint) if public_endpoint.strip() else None
    known = {own, *(o for o in map(origin, controllers) if o)}
    if public:
        known.add(public)
    return Rebase(own=own, public=public or own, known=frozenset(known))
