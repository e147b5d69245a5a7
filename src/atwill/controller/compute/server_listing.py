"""GET /servers and /servers/detail: filters, sort and limit/marker in SQL, one page read."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import Select, func, select

from ...core import servertags
from ...core.microversion import Version
from ...core.name_regex import NamePattern
from ...core.policy import Credentials
from ...core.sortparams import sort_pairs
from ..db.models import Instance
from ..servers import states, view
from ..service import controller
from ..sqlpage import Key
from .common import base, query_bool, sql_paginated

# Nova's sortable server attributes, by the instance column each one means. NULLs are
# coalesced so that the keyset comparisons of the next page are total.
SORT_COLUMNS: dict[str, Any] = {
    "availability_zone": func.coalesce(Instance.availability_zone, ""),
    "config_drive": Instance.config_drive, "created_at": Instance.created_at,
    "display_description": func.coalesce(Instance.description, ""),
    "display_name": Instance.name, "host": func.coalesce(Instance.node_name, ""),
    "node": func.coalesce(Instance.node_name, ""), "hostname": Instance.hostname,
    "image_ref": func.coalesce(Instance.image_id, ""),
    "key_name": func.coalesce(Instance.key_name, ""), "launch_index": Instance.launch_index,
    "launched_at": func.coalesce(Instance.launched_at, Instance.created_at),
    "locked_by": func.coalesce(Instance.locked_by, ""), "power_state": Instance.power_state,
    "project_id": Instance.project_id, "task_state": func.coalesce(Instance.task_state, ""),
    "terminated_at": func.coalesce(Instance.terminated_at, Instance.created_at),
    "updated_at": Instance.updated_at, "user_id": Instance.user_id, "uuid": Instance.id,
    "vm_state": Instance.vm_state,
}
# Keys Nova's schema accepts and then does not sort by.
IGNORED = ("access_ip_v4", "access_ip_v6", "auto_disk_config", "instance_type_id",
           "kernel_id", "progress", "ramdisk_id", "root_device_name", "vm_mode",
           "architecture", "cell_name", "cleaned", "default_ephemeral_device",
           "default_swap_device", "deleted", "deleted_at", "disable_terminate",
           "ephemeral_gb", "ephemeral_key_uuid", "id", "key_data", "launched_on",
           "memory_mb", "os_type", "reservation_id", "root_gb", "shutdown_terminate",
           "user_data", "vcpus")
DEFAULT_ORDER = [Key(Instance.created_at, desc=True)]


def listing(request: Request, creds: Credentials, version: Version, detailed: bool) -> dict:
    params = request.query_params
    stmt = _scoped(request, creds, version)
    keys = sort_keys(params, creds, version) + [Key(Instance.id)]
    accept = _python_filter(params, creds, version)
    path = "servers/detail" if detailed else "servers"
    with controller(request).db.session() as session:
        found, more = sql_paginated(request, session, stmt, keys, Instance.id, path,
                                    "servers_links", accept)
        if detailed:
            items = [view.detail(session, i, version, base(request), creds) for i in found]
        else:
            items = [view.summary(i, base(request)) for i in found]
    return {"servers": items, **more}


def sort_keys(params: Any, creds: Credentials, version: Version) -> list[Key]:
    keys, dirs = params.getlist("sort_key"), params.getlist("sort_dir")
    if not keys and not dirs:
        return list(DEFAULT_ORDER)
    valid = {**SORT_COLUMNS, **({"locked": Instance.locked} if version >= "2.73" else {})}
    pairs = sort_pairs(keys, dirs, valid, IGNORED, ("host", "node"), creds.is_admin)
    return [Key(valid[k], desc=d == "desc") for k, d in pairs] or list(DEFAULT_ORDER)


def _scoped(request: Request, creds: Credentials, version: Version) -> Select:
    """The instances the caller may list, narrowed by every filter SQL can judge."""
    params = request.query_params
    all_projects = creds.reads_all and "all_tenants" in params and params.get(
        "all_tenants", "").lower() in ("1", "true", "yes", "")
    stmt = select(Instance)
    if not (creds.is_admin and params.get("deleted", "").lower() in ("true", "1")):
        stmt = stmt.where(Instance.deleted.is_(False))
    project = params.get("project_id") or params.get("tenant_id")
    if not creds.reads_all or (not all_projects and not project):
        stmt = stmt.where(Instance.project_id == creds.project_id)
    elif project:
        stmt = stmt.where(Instance.project_id == project)
    if version >= "2.73" and "locked" in params:
        stmt = stmt.where(Instance.locked.is_(query_bool(request, "locked")))
    exact = {"image": Instance.image_id, "availability_zone": Instance.availability_zone,
             "reservation_id": Instance.reservation_id}
    if creds.is_admin:
        exact["host"] = Instance.node_name
    for name, column in exact.items():
        if params.get(name):
            stmt = stmt.where(column == params[name])
    return stmt


def _python_filter(params: Any, creds: Credentials, version: Version) -> Any:
    """What SQL cannot judge (a regex, the derived status, JSON fields), or None."""
    name = NamePattern(params["name"]) if params.get("name") else None
    tags = servertags.parse_filters(params) if version >= "2.26" else {}
    status = (params.get("status") or "").upper()
    flavor = params.get("flavor")
    if name is None and not tags and not status and not flavor:
        return None

    def accept(inst: Instance) -> bool:
        return ((name is None or name.search(inst.name))
                and (not status or states.status(inst.vm_state, inst.task_state) == status)
                and (not flavor or inst.flavor.get("id") == flavor)
                and servertags.matches(inst.tags or [], tags))
    return accept
