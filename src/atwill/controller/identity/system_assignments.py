"""System role assignments as /v3/role_assignments lists them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest
from ..db.identity import SystemRoleAssignment
from ..db.models import Domain, Role, User


def system_filter(params: Any) -> bool | None:
    """True: only system assignments (scope.system=all); False: none; None: both."""
    if "scope.system" in params:
        if params["scope.system"] != "all":
            raise BadRequest("Invalid value for 'scope.system': the only system is 'all'.")
        if params.get("scope.project.id") or params.get("scope.domain.id"):
            raise BadRequest("Specify only one of scope.system, scope.project.id and "
                             "scope.domain.id.")
        return True
    if params.get("scope.project.id") or params.get("scope.domain.id"):
        return False
    return None


def system_assignments(session: Session, base_url: str, params: Any,
                       names: bool) -> list[dict[str, Any]]:
    query = select(SystemRoleAssignment).order_by(SystemRoleAssignment.id)
    if params.get("user.id"):
        query = query.where(SystemRoleAssignment.user_id == params["user.id"])
    if params.get("role.id"):
        query = query.where(SystemRoleAssignment.role_id == params["role.id"])
    return [_view(session, base_url, a, names) for a in session.scalars(query)]


def _view(session: Session, base_url: str, a: SystemRoleAssignment,
          names: bool) -> dict[str, Any]:
    role: dict[str, Any] = {"id": a.role_id}
    user: dict[str, Any] = {"id": a.user_id}
    if names:
        user_obj = session.get(User, a.user_id)
        user_domain = session.get(Domain, user_obj.domain_id)
        role["name"] = session.get(Role, a.role_id).name
        user.update(name=user_obj.name, domain={"id": user_domain.id, "name": user_domain.name})
    link = f"{base_url}/v3/system/users/{a.user_id}/roles/{a.role_id}"
    return {"role": role, "user": user, "scope": {"system": {"all": True}},
            "links": {"assignment": link}}
