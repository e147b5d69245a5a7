"""/os-hypervisors: list, detail, show, statistics (< 2.88), search and uptime."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from ...core.errors import BadRequest, NotFound, NotImplementedByHost
from ...core.microversion import Version
from ...core.policy import Credentials
from .. import sqlpage
from ..db.compute import Node
from ..service import authorize, caller, controller
from ..sqlpage import Key
from .common import api_version, query_bool, require, sql_paginated
from .nodes import all_nodes, find, is_up, shown_id

router = APIRouter()
BASE = "/v2.1/os-hypervisors"


@router.get(BASE)
def hypervisors_get(request: Request, creds: Credentials = Depends(caller),
                    version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:hypervisors:list")
    return _listing(request, version, detailed=False)


@router.get(BASE + "/detail")
def hypervisors_detail_get(request: Request, creds: Credentials = Depends(caller),
                           version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:hypervisors:list")
    return _listing(request, version, detailed=True)


@router.get(BASE + "/statistics")
def hypervisor_statistics_get(request: Request, creds: Credentials = Depends(caller),
                              version: Version = Depends(api_version)) -> dict:
    require(version, "2.1", maximum="2.87")
    authorize(creds, "compute:hypervisors:statistics")
    with controller(request).db.session() as session:
        nodes = all_nodes(session)
    total = {key: sum(getattr(n, key) for n in nodes) for key in (
        "vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used",
        "running_vms")}
    free_disk = total["local_gb"] - total["local_gb_used"]
    return {"hypervisor_statistics": {
        "count": len(nodes), **total, "free_ram_mb": total["memory_mb"] - total["memory_mb_used"],
        "free_disk_gb": free_disk, "disk_available_least": free_disk, "current_workload": 0}}


@router.get(BASE + "/{pattern}/search")
@router.get(BASE + "/{pattern}/servers")
def hypervisors_search_get(pattern: str, request: Request,
                           creds: Credentials = Depends(caller),
                           version: Version = Depends(api_version)) -> dict:
    require(version, "2.1", maximum="2.52")
    authorize(creds, "compute:hypervisors:search")
    with controller(request).db.session() as session:
        nodes = [n for n in all_nodes(session) if pattern in n.name]
    if not nodes:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    servers = request.url.path.endswith("/servers")
    return {"hypervisors": [{**summary(n, version), **({"servers": []} if servers else {})}
                            for n in nodes]}


@router.get(BASE + "/{hypervisor_id}/uptime")
def hypervisor_uptime_get(hypervisor_id: str, request: Request,
                          creds: Credentials = Depends(caller),
                          version: Version = Depends(api_version)) -> dict:
    require(version, "2.1", maximum="2.87")
    authorize(creds, "compute:hypervisors:show")
    with controller(request).db.session() as session:
        node = find(session, hypervisor_id, version, "id", "Hypervisor")
    uptime = uptime_line(node)
    if uptime is None:
        # Nova's answer for a host that cannot tell; the CLI's `hypervisor show` skips it.
        raise NotImplementedByHost("Virt driver does not implement uptime function.")
    return {"hypervisor": {**summary(node, version), "uptime": uptime}}


def uptime_line(node: Node) -> str | None:
    """The host's uptime(1) line, as the node's agent last reported it."""
    host = node.host_status or {}
    if "uptime_s" not in host:
        return None
    minutes = int(host["uptime_s"]) // 60
    days, rest = divmod(minutes, 1440)
    load = ", ".join(f"{x:.2f}" for x in host.get("loadavg", [0, 0, 0])[:3])
    when = str(host.get("time", "00:00:00"))
    span = f"{days} days, {rest // 60}:{rest % 60:02d}" if days else f"{rest // 60}:{rest % 60:02d}"
    return f" {when} up {span},  0 users,  load average: {load}"


@router.get(BASE + "/{hypervisor_id}")
def hypervisor_get(hypervisor_id: str, request: Request, creds: Credentials = Depends(caller),
                   version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:hypervisors:show")
    with_servers = version >= "2.53" and query_bool(request, "with_servers")
    with controller(request).db.session() as session:
        node = find(session, hypervisor_id, version, "id", "Hypervisor")
    out = detail(node, version)
    if version >= "2.88":
        out["uptime"] = uptime_line(node)
    if with_servers:
        out["servers"] = []
    return {"hypervisor": out}


def summary(node: Node, version: Version) -> dict[str, Any]:
    return {"id": shown_id(node.id, version), "hypervisor_hostname": node.name,
            "state": "up" if is_up(node) else "down",
            "status": "enabled" if node.enabled else "disabled"}


def detail(node: Node, version: Version) -> dict[str, Any]:
    out = {**summary(node, version), "host_ip": node.host_ip,
           "hypervisor_type": node.hypervisor_type,
           "hypervisor_version": node.hypervisor_version,
           "service": {"host": node.name, "id": shown_id(node.service_id, version),
                       "disabled_reason": node.disabled_reason}}
    if version >= "2.88":
        return out
    inventory = node.inventory or {}
    cpu_info: Any = {"arch": inventory.get("arch"), "model": inventory.get("cpu_model"),
                     "features": inventory.get("cpu_flags", []),
                     "accelerator": inventory.get("accelerator")}
    free_disk = node.local_gb - node.local_gb_used
    out.update({
        "vcpus": node.vcpus, "memory_mb": node.memory_mb, "local_gb": node.local_gb,
        "vcpus_used": node.vcpus_used, "memory_mb_used": node.memory_mb_used,
        "local_gb_used": node.local_gb_used, "running_vms": node.running_vms,
        "free_ram_mb": node.memory_mb - node.memory_mb_used, "free_disk_gb": free_disk,
        "disk_available_least": free_disk, "current_workload": 0,
        # 2.28 turned cpu_info from a JSON string into an object.
        "cpu_info": cpu_info if version >= "2.28" else json.dumps(cpu_info)})
    return out


def _marker_where(version: Version) -> Any:
    """A marker names a node by its uuid, or before 2.53 by the integer shown for it (the
    first seven hex digits of that uuid)."""
    if version >= "2.53":
        return Node.id
    return lambda marker: Node.id.startswith(
        f"{int(marker):07x}" if marker.isdigit() and int(marker) < 16**7 else "-")


def _listing(request: Request, version: Version, detailed: bool) -> dict:
    params = request.query_params
    pattern = params.get("hypervisor_hostname_pattern") if version >= "2.53" else None
    if pattern is not None and ("limit" in params or "marker" in params):
        raise BadRequest("Paging over a list of hypervisors using a hostname pattern is "
                         "not supported.")
    with_servers = version >= "2.53" and query_bool(request, "with_servers")
    stmt = select(Node)
    if pattern is not None:
        stmt = stmt.where(Node.name.contains(pattern, autoescape=True))
    keys = [Key(Node.created_at), Key(Node.name), Key(Node.id)]
    with controller(request).db.session() as session:
        more: dict[str, Any] = {}
        if version >= "2.33":
            nodes, more = sql_paginated(
                request, session, stmt, keys, _marker_where(version),
                "os-hypervisors/detail" if detailed else "os-hypervisors",
                "hypervisors_links", marker_of=lambda n: shown_id(n.id, version))
        else:
            nodes = list(session.scalars(stmt.order_by(*sqlpage.ordered(keys))))
    if pattern is not None and not nodes:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    items = [detail(n, version) if detailed else summary(n, version) for n in nodes]
    if with_servers:
        items = [{**item, "servers": []} for item in items]
    return {"hypervisors": items, **more}
