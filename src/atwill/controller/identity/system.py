"""System scope: role assignments on the system (/v3/system/...) and /v3/auth/system.

Keystone's system has one target, "all"; a role there makes the user a cloud-wide
reader or admin (core/policy.py says what each may do). Groups do not exist here, so
only users hold system roles.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, NotFound
from ...core.policy import Credentials
from ..db.identity import SystemRoleAssignment
from ..db.models import Role, User
from ..service import authorize, caller, controller
from . import views
from .common import base, get_or_404, listing
from .tokens import TokenService

router = APIRouter()
SYSTEM_ALL = {"all": True}


def system_scope(scope: dict[str, Any]) -> bool:
    """Validate an auth body's scope naming the system (only {"all": true} exists)."""
    if "project" in scope or "domain" in scope:
        raise BadRequest("Invalid input: 'auth.scope' may name only one of project, "
                         "domain or system.")
    if scope["system"] != SYSTEM_ALL:
        raise BadRequest("Invalid input: 'auth.scope.system' must be {\"all\": true}.")
    return True


def system_roles(session: Session, user_id: str) -> list[str]:
    """Ids of the roles assigned to the user on the system (none implied)."""
    return list(session.scalars(select(SystemRoleAssignment.role_id).where(
        SystemRoleAssignment.user_id == user_id)))


def _grant(session: Session, user_id: str, role_id: str) -> SystemRoleAssignment | None:
    get_or_404(session, User, user_id, "user")
    get_or_404(session, Role, role_id, "role")
    return session.scalar(select(SystemRoleAssignment).where(
        SystemRoleAssignment.user_id == user_id, SystemRoleAssignment.role_id == role_id))


def _missing(user_id: str, role_id: str) -> NotFound:
    return NotFound(f"Could not find role assignment with role: {role_id}, user: {user_id}, "
                    "system: all.")


@router.put("/v3/system/users/{user_id}/roles/{role_id}")
def system_grant_put(user_id: str, role_id: str, request: Request,
                     creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:create_system_grant_for_user")
    with controller(request).db.session() as session:
        if _grant(session, user_id, role_id) is None:
            session.add(SystemRoleAssignment(user_id=user_id, role_id=role_id))
    return Response(status_code=204)


@router.api_route("/v3/system/users/{user_id}/roles/{role_id}", methods=["HEAD", "GET"])
def system_grant_check(user_id: str, role_id: str, request: Request,
                       creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:check_system_grant_for_user")
    with controller(request).db.session() as session:
        if _grant(session, user_id, role_id) is None:
            raise _missing(user_id, role_id)
    return Response(status_code=204)


@router.delete("/v3/system/users/{user_id}/roles/{role_id}")
def system_grant_delete(user_id: str, role_id: str, request: Request,
                        creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:revoke_system_grant_for_user")
    ctl = controller(request)
    with ctl.db.session() as session:
        grant = _grant(session, user_id, role_id)
        if grant is None:
            raise _missing(user_id, role_id)
        session.delete(grant)
        # System tokens carry no roles; revoking the user's tokens ends cached validations.
        TokenService(ctl).revoke_user(session, user_id)
    return Response(status_code=204)


@router.get("/v3/system/users/{user_id}/roles")
def system_grants_get(user_id: str, request: Request,
                      creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:list_system_grants_for_user")
    with controller(request).db.session() as session:
        get_or_404(session, User, user_id, "user")
        ids = system_roles(session, user_id)
        roles = session.scalars(select(Role).where(Role.id.in_(ids)).order_by(Role.name))
        items = [views.role(r, base(request)) for r in roles]
    return listing(request, "roles", items)


@router.get("/v3/auth/system")
def auth_system_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:get_auth_system")
    with controller(request).db.session() as session:
        has_role = bool(system_roles(session, creds.user_id))
    return {"system": [dict(SYSTEM_ALL)] if has_role else [],
            "links": {"self": str(request.url), "next": None, "previous": None}}
