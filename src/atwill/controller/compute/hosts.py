"""/os-hosts (removed at 2.43, still what `openstack host list/show/set` call): the compute
nodes and the live controllers (conductor, scheduler) as hosts; a compute host's resources
per project; enable/disable; no maintenance mode or power actions."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, NotFound, NotImplementedByHost
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.compute import Node
from ..db.servers import Instance
from ..service import authorize, caller, controller, json_body
from .common import api_version, require
from .nodes import all_nodes, controller_host, live_controllers

router = APIRouter()
BASE = "/v2.1/os-hosts"
LAST = "2.42"
SWITCH = {"enable", "disable"}  # Nova accepts these in lower, Title and UPPER case
POWER_ACTIONS = ("startup", "shutdown", "reboot")
INTERNAL = "internal"  # Nova's zone of services that are not nova-compute


@router.get(BASE)
def hosts_get(request: Request, creds: Credentials = Depends(caller),
              version: Version = Depends(api_version)) -> dict:
    require(version, "2.1", maximum=LAST)
    authorize(creds, "compute:hypervisors:list")
    zone = request.query_params.get("zone")  # empty means every zone, as in Nova
    with controller(request).db.session() as session:
        hosts = [{"host_name": n.name, "service": "compute", "zone": n.availability_zone}
                 for n in all_nodes(session)]
        # Nova lists every service's host: a controller is its conductor and scheduler.
        for row in live_controllers(session):
            hosts += [{"host_name": controller_host(row), "service": service, "zone": INTERNAL}
                      for service in ("conductor", "scheduler")]
    return {"hosts": [h for h in hosts if not zone or h["zone"] == zone]}


@router.get(BASE + "/{host}")
def host_get(host: str, request: Request, creds: Credentials = Depends(caller),
             version: Version = Depends(api_version)) -> dict:
    require(version, "2.1", maximum=LAST)
    authorize(creds, "compute:hypervisors:show")
    with controller(request).db.session() as session:
        node = _node(session, host)
        instances = list(session.scalars(select(Instance).where(
            Instance.node_id == node.id, Instance.deleted.is_(False))))
        return {"host": _resources(node, instances)}


@router.put(BASE + "/{host}")
def host_put(host: str, request: Request, body: dict = Depends(json_body),
             creds: Credentials = Depends(caller),
             version: Version = Depends(api_version)) -> dict:
    require(version, "2.1", maximum=LAST)
    authorize(creds, "compute:services:update")
    status, maintenance = _parse_update(body)
    with controller(request).db.session() as session:
        node = _node(session, host)
        if maintenance is not None:
            raise NotImplementedByHost("Virt driver does not implement host maintenance mode.")
        node.enabled = status == "enable"
        node.disabled_reason = None
        return {"host": node.name, "status": "enabled" if node.enabled else "disabled"}


@router.get(BASE + "/{host}/{action}")
def host_power_get(host: str, action: str, request: Request,
                   creds: Credentials = Depends(caller),
                   version: Version = Depends(api_version)) -> dict:
    require(version, "2.1", maximum=LAST)
    if action not in POWER_ACTIONS:
        raise NotFound(f"Unknown host action {action}.")
    authorize(creds, "compute:services:update")
    with controller(request).db.session() as session:
        _node(session, host)
    # Nova's libvirt driver has no host power actions either: its answer is this 501.
    raise NotImplementedByHost("Virt driver does not implement host power management.")


def _node(session: Session, host: str) -> Node:
    node = session.scalar(select(Node).where(Node.name == host))
    if node is None:
        raise NotFound(f"Compute host {host} could not be found.")
    return node


def _parse_update(body: dict[str, Any]) -> tuple[str | None, str | None]:
    unknown = sorted(set(body) - {"status", "maintenance_mode"})
    if unknown or not body:
        raise BadRequest("Invalid host update: give status or maintenance_mode (enable or "
                         "disable), and nothing else.")
    values = []
    for key in ("status", "maintenance_mode"):
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or value.lower() not in SWITCH
                                  or value not in (value.lower(), value.title(),
                                                   value.upper())):
            raise BadRequest(f"Invalid input for field/attribute {key}: {value!r} is not "
                             "one of enable, disable.")
        if key in body and value is None:
            raise BadRequest(f"Invalid input for field/attribute {key}: None is not a string.")
        values.append(value.lower() if value is not None else None)
    return values[0], values[1]


def _resources(node: Node, instances: list[Instance]) -> list[dict[str, Any]]:
    """Nova's rows: the host's total, used now, the instances' sum, then each project's."""
    def row(project: str, cpu: int, memory_mb: int, disk_gb: int) -> dict[str, Any]:
        return {"resource": {"host": node.name, "project": project, "cpu": cpu,
                             "memory_mb": memory_mb, "disk_gb": disk_gb}}

    per_project: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for inst in instances:
        sums = per_project[inst.project_id]
        sums[0] += inst.vcpus
        sums[1] += inst.memory_mb
        sums[2] += inst.disk_gb + int((inst.flavor or {}).get("ephemeral") or 0)
    used_max = [sum(s[i] for s in per_project.values()) for i in range(3)]
    return [row("(total)", node.vcpus, node.memory_mb, node.local_gb),
            row("(used_now)", node.vcpus_used, node.memory_mb_used, node.local_gb_used),
            row("(used_max)", *used_max),
            *(row(project, *sums) for project, sums in sorted(per_project.items()))]
