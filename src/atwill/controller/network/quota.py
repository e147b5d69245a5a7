"""Network quota limits, usage and the OverQuota check made on every create."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...core import netquota
from ...core.errors import Conflict
from ..db.network import (
    FloatingIP,
    Network,
    NetworkQuota,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from .common import fault

MODELS = {"network": Network, "subnet": Subnet, "port": Port, "router": Router,
          "floatingip": FloatingIP, "security_group": SecurityGroup,
          "security_group_rule": SecurityGroupRule}


def limits(session: Session, project_id: str) -> dict[str, int]:
    out = dict(netquota.DEFAULTS)
    for row in session.scalars(select(NetworkQuota).where(NetworkQuota.project_id == project_id)):
        out[row.resource] = row.hard_limit
    return out


def used(session: Session, project_id: str, resource: str) -> int:
    model = MODELS[resource]
    return session.scalar(select(func.count()).select_from(model).where(
        model.project_id == project_id)) or 0


def usage(session: Session, project_id: str) -> dict[str, int]:
    return {resource: used(session, project_id, resource) for resource in MODELS}


def enforce(session: Session, project_id: str, resource: str, count: int = 1) -> None:
    """409 OverQuota when count more would exceed the project's limit."""
    limit = limits(session, project_id)[resource]
    if netquota.over(limit, used(session, project_id, resource), count):
        raise fault(Conflict, "OverQuota", f"Quota exceeded for resources: ['{resource}'].")
