"""A server's security groups as Nova shows and changes them: through its ports' groups."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, Conflict, NotFound
from ...core.novasecgroups import nova_group
from ...core.policy import Credentials
from ..db.models import Instance
from ..db.network import Port, PortSecurityGroup, SecurityGroup
from ..network import views
from ..network.sgdefault import ensure_default
from ..servers import builds, ports
from ..service import authorize, caller, controller

router = APIRouter()


@router.get("/v2.1/servers/{server_id}/os-security-groups")
def server_groups_get(server_id: str, request: Request,
                      creds: Credentials = Depends(caller)) -> dict:
    with controller(request).db.session() as session:
        inst = builds.get(session, server_id, creds)
        authorize(creds, "compute:servers:show", project_id=inst.project_id)
        groups = _groups_of(session, inst)
        remotes = {g.id: {"name": g.name, "tenant_id": g.project_id} for g in session.scalars(
            select(SecurityGroup).where(SecurityGroup.id.in_(_remote_ids(groups))))}
        shown = [nova_group(views.security_group(g), remotes) for g in groups]
    # Nova sorts by (tenant_id, name).
    return {"security_groups": sorted(shown, key=lambda g: (g["tenant_id"], g["name"]))}


def _groups_of(session: Session, inst: Instance) -> list[SecurityGroup]:
    """The groups on any of the server's ports, each once."""
    ids = dict.fromkeys(link.security_group_id for port in ports.of(session, inst)
                        for link in port.groups)
    found = [session.get(SecurityGroup, i) for i in ids]
    return [g for g in found if g is not None]


def _remote_ids(groups: list[SecurityGroup]) -> set[str]:
    return {r.remote_group_id for g in groups for r in g.rules if r.remote_group_id}


def group_name(args: Any) -> str:
    """The body of addSecurityGroup/removeSecurityGroup, checked as Nova's _parse does."""
    if not isinstance(args, dict):
        raise BadRequest("Missing parameter dict")
    if "name" not in args:
        raise BadRequest("Security group not specified")
    name = args["name"]
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("Security group name cannot be empty")
    return name


def _find(session: Session, inst: Instance, name: str) -> SecurityGroup:
    """By id or name among the server's project's groups (Neutron's name-or-id lookup)."""
    ensure_default(session, inst.project_id)
    found = list(session.scalars(select(SecurityGroup).where(
        SecurityGroup.project_id == inst.project_id,
        or_(SecurityGroup.id == name, SecurityGroup.name == name))))
    by_id = [g for g in found if g.id == name]
    if by_id:
        return by_id[0]
    if len(found) > 1:
        raise Conflict(f"Multiple security_group matches found for name '{name}', use an ID "
                       "to be more specific.")
    if not found:
        raise NotFound(f"Security group {name} is not found for project {inst.project_id}")
    return found[0]


def _ports(session: Session, inst: Instance) -> list[Port]:
    found = ports.of(session, inst)
    if not found:
        raise NotFound(f"instance_id {inst.id} could not be found as device id on any ports")
    return found


def add(session: Session, inst: Instance, args: Any) -> None:
    """addSecurityGroup: the group goes onto every port of the server, as in Nova."""
    name = group_name(args)
    group = _find(session, inst, name)
    found = _ports(session, inst)
    for port in found:
        if not (port.port_security_enabled and port.fixed_ips):
            raise BadRequest("Network requires port_security_enabled and subnet associated in "
                             "order to apply security groups.")
        if any(link.security_group_id == group.id for link in port.groups):
            # Neutron refuses the duplicate in the port's list; Nova answers 400.
            raise BadRequest(f"Security group {name} is already associated with the instance "
                             f"{inst.id}")
    for port in found:
        port.groups.append(PortSecurityGroup(port_id=port.id, security_group_id=group.id))
        port.touch()
    inst.security_groups = [*(inst.security_groups or []), group.name]


def remove(session: Session, inst: Instance, args: Any) -> None:
    """removeSecurityGroup: off every port that has it; 404 when none had it (Nova)."""
    name = group_name(args)
    group = _find(session, inst, name)
    removed = False
    for port in _ports(session, inst):
        kept = [link for link in port.groups if link.security_group_id != group.id]
        if len(kept) != len(port.groups):
            port.groups, removed = kept, True
            port.touch()
    if not removed:
        raise NotFound(f"Security group {name} not associated with the instance {inst.id}")
    inst.security_groups = [n for n in inst.security_groups or [] if n != group.name]
