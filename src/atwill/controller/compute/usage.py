"""Quota limits and usage in one place, so every resource counts against them alike.

Servers and server groups do not exist yet: their usage is 0 until the instance
work plugs its counting into project_usage().
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...core import quotas
from ...core.errors import Forbidden
from ..db.compute import Keypair, Quota, QuotaClass

DEFAULT_CLASS = "default"


def class_limits(session: Session, class_name: str = DEFAULT_CLASS) -> dict[str, int]:
    """A quota class's limits; unset resources fall back to the default class, then code."""
    limits = dict(quotas.DEFAULTS)
    names = [DEFAULT_CLASS] if class_name == DEFAULT_CLASS else [DEFAULT_CLASS, class_name]
    for name in names:
        rows = session.execute(select(QuotaClass.resource, QuotaClass.hard_limit).where(
            QuotaClass.class_name == name))
        limits.update({r: v for r, v in rows if r in limits})
    return limits


def project_limits(session: Session, project_id: str) -> dict[str, int]:
    """The default class overlaid with the project's own limits."""
    limits = class_limits(session)
    rows = session.execute(select(Quota.resource, Quota.hard_limit).where(
        Quota.project_id == project_id))
    limits.update({r: v for r, v in rows if r in limits})
    return limits


def project_usage(session: Session, project_id: str, user_id: str | None) -> dict[str, int]:
    """What a project (and, for key pairs, its calling user) uses of each resource."""
    used = dict.fromkeys(quotas.DEFAULTS, 0)
    if user_id is not None:
        used["key_pairs"] = session.scalar(
            select(func.count(Keypair.id)).where(Keypair.user_id == user_id)) or 0
    return used


def check(session: Session, project_id: str, user_id: str | None, resource: str,
          requested: int = 1) -> None:
    """403 with the exact numbers when requested more units would exceed the limit."""
    limit = project_limits(session, project_id)[resource]
    in_use = project_usage(session, project_id, user_id)[resource]
    if not quotas.headroom(limit, in_use, requested):
        raise Forbidden(f"Quota exceeded for {resource}: Requested {requested}, but already "
                        f"used {in_use} of {limit} {resource}.")
