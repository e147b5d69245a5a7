"""Every project's `default` security group, created on first use with Neutron's rules."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import netrules
from ...core.errors import NotFound
from ..db.network import DefaultSecurityGroup, SecurityGroup, SecurityGroupRule
from .common import fault


def ensure_default(session: Session, project_id: str | None) -> SecurityGroup | None:
    """The project's default group, made now if it has none (race-free: the
    default_security_groups primary key lets only one writer win; the loser retries)."""
    if not project_id:
        return None
    row = session.get(DefaultSecurityGroup, project_id)
    if row is not None:
        return session.get(SecurityGroup, row.security_group_id)
    group = SecurityGroup(project_id=project_id, name="default",
                          description="Default security group")
    session.add(group)
    session.flush()
    session.add(DefaultSecurityGroup(project_id=project_id, security_group_id=group.id))
    add_rules(group, netrules.default_rules(group.id))
    session.flush()
    return group


def add_rules(group: SecurityGroup, rules: list[dict]) -> None:
    for rule in rules:
        group.rules.append(SecurityGroupRule(project_id=group.project_id, **rule))


def is_default(session: Session, group: SecurityGroup) -> bool:
    return session.scalar(select(DefaultSecurityGroup.project_id).where(
        DefaultSecurityGroup.security_group_id == group.id)) is not None


def groups_for(session: Session, project_id: str, ids: list[str]) -> list[str]:
    """The ids, each a group of project_id, or a 404 naming the first that is not."""
    for group_id in ids:
        group = session.get(SecurityGroup, group_id)
        if group is None or group.project_id != project_id:
            raise fault(NotFound, "SecurityGroupNotFound", f"Security group {group_id} does "
                        "not exist")
    return list(dict.fromkeys(ids))
