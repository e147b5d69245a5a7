"""What the volume handlers share: Cinder's errors, microversions, project in the URL."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import Depends, Request
from starlette.types import Scope

from ...core import volume_microversion
from ...core.errors import ApiError, BadRequest, Forbidden
from ...core.microversion import Version
from ...core.policy import MEMBER_ROLES, READER_ROLES, Credentials
from ..compute.common import nova_error
from ..microversion_middleware import MicroversionMiddleware
from ..service import caller, controller

VERSION_STATE, PROJECT_STATE = "volume_version", "volume_url_project"
# The first segment after /v3/ of every collection; anything else there is a project id
# (optional since 3.67, as Cinder: /v3/{project_id}/volumes and /v3/volumes are the same).
COLLECTIONS = frozenset((
    "volumes", "types", "snapshots", "attachments", "os-quota-sets", "os-quota-class-sets",
    "limits", "os-availability-zone", "os-services", "extensions", "scheduler-stats",
    "messages", "backups", "default-types", "groups", "group_types", "group_snapshots",
    "qos-specs", "os-volume-transfer", "volume-transfers", "manageable_volumes",
    "manageable_snapshots", "clusters", "workers", "os-hosts", "resource_filters",
    "capabilities", "consistencygroups", "cgsnapshots", "os-snapshot-manage",
    "os-volume-manage"))


def cinder_error(err: ApiError) -> dict[str, Any]:
    """Cinder's faults have Nova's shape: {"itemNotFound": {"code", "message"}}."""
    return nova_error(err)


class VolumeRequests(MicroversionMiddleware):
    """Take the optional project id out of the path and parse the microversion once."""

    state_key, minimum = VERSION_STATE, volume_microversion.MIN

    def parse(self, headers: dict[str, str]) -> Version:
        return volume_microversion.requested(headers)

    def echo(self, version: Version) -> list[tuple[bytes, bytes]]:
        return [(b"openstack-api-version", f"volume {version}".encode()),
                (b"vary", b"OpenStack-API-Version")]

    def render(self, err: ApiError) -> dict[str, Any]:
        return cinder_error(err)

    def rewrite(self, scope: Scope, state: dict[str, Any]) -> None:
        _strip_project(scope, state)


def _strip_project(scope: Scope, state: dict[str, Any]) -> None:
    root = scope.get("root_path", "")
    path = scope["path"]
    prefix, relative = (root, path[len(root):]) if root and path.startswith(root) else ("", path)
    parts = relative.split("/")
    # ['', 'v3', PROJECT, ...]
    if len(parts) >= 3 and parts[1] == "v3" and parts[2] and parts[2] not in COLLECTIONS:
        state[PROJECT_STATE] = parts[2]
        rest = "/".join(["", "v3", *parts[3:]])
        new_path = prefix + rest
        scope["path"] = new_path
        scope["raw_path"] = new_path.encode()


def api_version(request: Request) -> Version:
    return request.scope["state"][VERSION_STATE]


def who(request: Request, creds: Credentials = Depends(caller)) -> Credentials:
    """The caller; a project id in the URL must be the token's own (Cinder's check)."""
    url_project = request.scope["state"].get(PROJECT_STATE)
    if url_project is not None and url_project != creds.project_id:
        raise BadRequest(f"Malformed request url: URL's project_id '{url_project[:64]}' "
                         f"doesn't match Context's project_id '{creds.project_id}'")
    return creds


def require_admin(creds: Credentials, action: str) -> None:
    if not creds.is_admin:
        raise Forbidden(f"Policy doesn't allow {action} to be performed.")


def require_member(creds: Credentials, project_id: str, action: str) -> None:
    if creds.is_admin:
        return
    if creds.project_id != project_id or not creds.roles & MEMBER_ROLES:
        raise Forbidden(f"Policy doesn't allow {action} to be performed.")


def can_read(creds: Credentials, project_id: str) -> bool:
    return creds.reads_all or (creds.project_id == project_id
                               and bool(creds.roles & READER_ROLES))


def stamp(value: dt.datetime | None) -> str | None:
    """Cinder's timestamps: 2024-01-02T03:04:05.000000."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


def base(request: Request) -> str:
    return f"{controller(request).base_url}/volume"


def links(request: Request, collection: str, ident: str, project_id: str) -> list[dict]:
    root = base(request)
    return [{"rel": "self", "href": f"{root}/v3/{project_id}/{collection}/{ident}"},
            {"rel": "bookmark", "href": f"{root}/{project_id}/{collection}/{ident}"}]


def query_bool(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "t", "y", "on"):
        return True
    if lowered in ("false", "0", "no", "f", "n", "off"):
        return False
    raise BadRequest(f"Invalid value '{value[:64]}' for {name}: it must be a boolean.")


def body_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    parsed = query_bool(value, name) if isinstance(value, str) else None
    if parsed is None:
        raise BadRequest(f"Invalid value '{str(value)[:64]}' for {name}: it must be a "
                         "boolean.")
    return parsed
