"""The X-Scope header: which cloud answers for each service of a request (OpenStackoïd).

`{"compute": "CloudOne", "image": "CloudTwo"}` names, per service type, the cloud that
serves it; a service left out (or named after this cloud) is served here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from .errors import ApiError, BadRequest
from .text import shown

HEADER = "x-scope"
# The service types a scope may name, and the path prefix each is mounted at here.
PREFIXES = {"identity": "/identity", "compute": "/compute", "image": "/image",
            "network": "/network", "volume": "/volume", "orchestration": "/orchestration"}
# Aliases clients use for the same services.
ALIASES = {"block-storage": "volume", "volumev3": "volume"}
LOCAL = ("", "local")
MAX_HEADER = 1024


class PeerUnavailable(ApiError):
    """A peer named in the scope did not answer in time (this cloud itself is fine)."""

    status, title = 503, "Service Unavailable"


def parse(raw: str | None, local_name: str = "") -> dict[str, str]:
    """service type -> peer name, for the services served by another cloud; 400 if bad."""
    if raw is None or not raw.strip():
        return {}
    if len(raw) > MAX_HEADER:
        raise BadRequest(f"X-Scope is longer than {MAX_HEADER} characters.")
    try:
        data = json.loads(raw)
    except ValueError:
        raise BadRequest("X-Scope must be a JSON object such as "
                         '{"image": "CloudTwo"}.') from None
    if not isinstance(data, dict):
        raise BadRequest("X-Scope must be a JSON object such as {\"image\": \"CloudTwo\"}.")
    out: dict[str, str] = {}
    for key, value in data.items():
        service = ALIASES.get(key, key)
        if service not in PREFIXES:
            raise BadRequest(f"X-Scope names the service {shown(key)}, which is none of "
                             f"{', '.join(sorted(PREFIXES))}.")
        if not isinstance(value, str):
            raise BadRequest(f"X-Scope: the cloud for {shown(key)} must be a string.")
        if value.strip() in (*LOCAL, local_name):
            continue
        out[service] = value.strip()
    return out


def service_of(path: str) -> str | None:
    """The service type a request path belongs to here (None: not a scoped service)."""
    for service, prefix in PREFIXES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None


def check_offered(scope: dict[str, str], known: dict[str, Iterable[str]]) -> None:
    """400 for a cloud that is not a peer here, or a peer that lacks the service."""
    for service, cloud in sorted(scope.items()):
        if cloud not in known:
            raise BadRequest(f"X-Scope names the cloud {shown(cloud)}, which is not a peer "
                             "of this cloud ('atwill peer list' shows them).")
        if service not in set(known[cloud]):
            raise BadRequest(f"The peer cloud {cloud} does not offer the {service} service.")
