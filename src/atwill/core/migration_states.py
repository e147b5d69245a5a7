"""Live migration's rules, as Nova's API states them: the request body per microversion,
which migrations may be aborted or forced, and the two views of a migration record."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .errors import BadRequest
from .microversion import Version

# Nova's in-progress live migration statuses (the server migrations API shows only these).
IN_PROGRESS = frozenset({"queued", "preparing", "running", "post-migrating",
                         "running (post-copy)"})
# Nova's status of a live migration switched to post-copy: neither aborted nor forced.
POST_COPY = "running (post-copy)"
# The vm_states Nova live-migrates from (ACTIVE and PAUSED servers).
LIVE_FROM = frozenset({"active", "paused"})
DOWNTIME_MS = 300  # Nova's live_migration_downtime default, and QEMU's own limit
NO_SHARED_STORAGE = ("is not on shared storage: Shared storage live-migration requires "
                     "either shared storage or boot-from-volume with no local disks.")


@dataclasses.dataclass(frozen=True)
class LiveRequest:
    host: str | None
    block_migration: bool | str
    force: bool


def _keys(version: Version) -> tuple[set[str], set[str]]:
    """(allowed, required) keys of os-migrateLive at version."""
    if not version >= "2.25":
        keys = {"host", "block_migration", "disk_over_commit"}
        return keys, keys
    allowed = {"host", "block_migration"}
    if version >= "2.30" and not version >= "2.68":
        allowed.add("force")
    return allowed, {"block_migration"}


def parse_live(args: Any, version: Version) -> LiveRequest:
    """The os-migrateLive body, or 400 with Nova's kind of message."""
    if not isinstance(args, dict):
        raise BadRequest("Invalid input for field/attribute os-migrateLive: an object is "
                         "required.")
    allowed, required = _keys(version)
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise BadRequest("Invalid input for field/attribute os-migrateLive. Additional "
                         f"properties are not allowed ({', '.join(map(repr, unknown))} was "
                         "unexpected)")
    for key in sorted(required - set(args)):
        raise BadRequest(f"Invalid input for field/attribute os-migrateLive: {key!r} is a "
                         "required property")
    host = args.get("host")
    if host is not None and (not isinstance(host, str) or not host.strip()
                             or len(host) > 255):
        raise BadRequest("Invalid input for field/attribute host: a host name of 1 to 255 "
                         "characters or null.")
    block = args["block_migration"]
    if not isinstance(block, bool) and not (version >= "2.25" and block == "auto"):
        choices = "true, false or 'auto'" if version >= "2.25" else "a boolean"
        raise BadRequest(f"Invalid input for field/attribute block_migration: {choices}.")
    for key in ("disk_over_commit", "force"):
        if key in args and not isinstance(args[key], bool):
            raise BadRequest(f"Invalid input for field/attribute {key}: a boolean.")
    force = bool(args.get("force"))
    if force and host is None:
        raise BadRequest("Can't force to a non-provided destination")
    return LiveRequest(host=host, block_migration=block, force=force)


def abortable(status: str, version: Version) -> bool:
    """2.24 aborts a running live migration; 2.65 also one still queued or preparing."""
    if status == "running":
        return True
    return version >= "2.65" and status in ("queued", "preparing")


def server_migration_view(m: Any, version: Version) -> dict[str, Any]:
    """A migration as GET /servers/{id}/migrations[/{mid}] shows it (2.23+)."""
    out = {"id": m.id, "server_uuid": m.instance_uuid, "status": m.status,
           "source_compute": m.source_compute, "source_node": m.source_node,
           "dest_compute": m.dest_compute, "dest_node": m.dest_node,
           "dest_host": m.dest_host,
           "memory_total_bytes": m.memory_total, "memory_processed_bytes": m.memory_processed,
           "memory_remaining_bytes": m.memory_remaining, "disk_total_bytes": m.disk_total,
           "disk_processed_bytes": m.disk_processed,
           "disk_remaining_bytes": m.disk_remaining,
           "created_at": _iso(m.created_at), "updated_at": _iso(m.updated_at)}
    return _later_fields(out, m, version)


def os_migration_view(m: Any, version: Version, base_url: str) -> dict[str, Any]:
    """A migration as GET /os-migrations lists it; links only for in-progress live ones."""
    out: dict[str, Any] = {
        "id": m.id, "instance_uuid": m.instance_uuid, "status": m.status,
        "source_compute": m.source_compute, "source_node": m.source_node,
        "dest_compute": m.dest_compute, "dest_node": m.dest_node, "dest_host": m.dest_host,
        "old_instance_type_id": m.old_instance_type_id,
        "new_instance_type_id": m.new_instance_type_id,
        "created_at": _iso(m.created_at), "updated_at": _iso(m.updated_at)}
    if version >= "2.23":
        out["migration_type"] = m.migration_type
        if m.migration_type == "live-migration" and m.status in IN_PROGRESS:
            path = f"servers/{m.instance_uuid}/migrations/{m.id}"
            out["links"] = [{"rel": "self", "href": f"{base_url}/v2.1/{path}"},
                            {"rel": "bookmark", "href": f"{base_url}/{path}"}]
    return _later_fields(out, m, version)


def _later_fields(out: dict[str, Any], m: Any, version: Version) -> dict[str, Any]:
    if version >= "2.59":
        out["uuid"] = m.uuid
    if version >= "2.80":
        out["user_id"], out["project_id"] = m.user_id, m.project_id
    return out


def _iso(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000000") if value is not None else None


LIST_FILTERS = ("host", "status", "instance_uuid", "source_compute", "migration_type")


def list_filters(params: Mapping[str, str], version: Version) -> dict[str, str]:
    """os-migrations' exact-match filters that this version knows."""
    names = [*LIST_FILTERS, *(("user_id", "project_id") if version >= "2.80" else ())]
    return {k: params[k] for k in names if params.get(k)}
