"""Grants (/v3/{projects,domains}/X/users/Y/roles/Z) and /v3/role_assignments."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, NotFound
from ...core.policy import Credentials
from ..db.models import Domain, Project, Role, RoleAssignment, User
from ..service import authorize, caller, controller
from . import views
from .common import base, bool_query, get_or_404
from .system_assignments import system_assignments, system_filter
from .tokens import TokenService

router = APIRouter()
TARGETS = {"projects": (Project, "project"), "domains": (Domain, "domain")}


def _target(kind: str) -> tuple[Any, str]:
    if kind not in TARGETS:
        raise NotFound("The resource could not be found.")
    return TARGETS[kind]


def _grant_query(kind: str, target_id: str, user_id: str, role_id: str | None = None):
    column = RoleAssignment.project_id if kind == "projects" else RoleAssignment.domain_id
    query = select(RoleAssignment).where(column == target_id, RoleAssignment.user_id == user_id)
    return query.where(RoleAssignment.role_id == role_id) if role_id else query


def _load(session: Session, kind: str, target_id: str, user_id: str,
          role_id: str | None = None) -> None:
    model, what = _target(kind)
    get_or_404(session, model, target_id, what)
    get_or_404(session, User, user_id, "user")
    if role_id:
        get_or_404(session, Role, role_id, "role")


@router.put("/v3/{kind}/{target_id}/users/{user_id}/roles/{role_id}")
def grant_put(kind: str, target_id: str, user_id: str, role_id: str, request: Request,
              creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:create_grant")
    with controller(request).db.session() as session:
        _load(session, kind, target_id, user_id, role_id)
        if session.scalar(_grant_query(kind, target_id, user_id, role_id)) is None:
            session.add(RoleAssignment(
                user_id=user_id, role_id=role_id,
                project_id=target_id if kind == "projects" else None,
                domain_id=target_id if kind == "domains" else None))
    return Response(status_code=204)


@router.api_route("/v3/{kind}/{target_id}/users/{user_id}/roles/{role_id}",
                  methods=["HEAD", "GET"])
def grant_check(kind: str, target_id: str, user_id: str, role_id: str, request: Request,
                creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:check_grant")
    with controller(request).db.session() as session:
        _load(session, kind, target_id, user_id, role_id)
        if session.scalar(_grant_query(kind, target_id, user_id, role_id)) is None:
            raise NotFound(f"Could not find role assignment with role: {role_id}, "
                           f"user: {user_id}, {_target(kind)[1]}: {target_id}.")
    return Response(status_code=204)


@router.delete("/v3/{kind}/{target_id}/users/{user_id}/roles/{role_id}")
def grant_delete(kind: str, target_id: str, user_id: str, role_id: str, request: Request,
                 creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:revoke_grant")
    ctl = controller(request)
    with ctl.db.session() as session:
        _load(session, kind, target_id, user_id, role_id)
        grant = session.scalar(_grant_query(kind, target_id, user_id, role_id))
        if grant is None:
            raise NotFound(f"Could not find role assignment with role: {role_id}, "
                           f"user: {user_id}, {_target(kind)[1]}: {target_id}.")
        session.delete(grant)
        # Tokens carry no roles, but revoke so a cached validation cannot outlive the grant.
        TokenService(ctl).revoke_user(session, user_id,
                                      target_id if kind == "projects" else None)
    return Response(status_code=204)


@router.get("/v3/{kind}/{target_id}/users/{user_id}/roles")
def grants_get(kind: str, target_id: str, user_id: str, request: Request,
               creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:list_grants")
    with controller(request).db.session() as session:
        _load(session, kind, target_id, user_id)
        ids = [g.role_id for g in session.scalars(_grant_query(kind, target_id, user_id))]
        roles = session.scalars(select(Role).where(Role.id.in_(ids)).order_by(Role.name))
        return {"roles": [views.role(r, base(request)) for r in roles],
                "links": {"self": str(request.url), "next": None, "previous": None}}


@router.get("/v3/role_assignments")
def assignments_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:list_role_assignments")
    params = request.query_params
    if params.get("group.id"):
        return {"role_assignments": [], "links": {"self": str(request.url)}}
    query = select(RoleAssignment)
    for key, column in (("user.id", RoleAssignment.user_id),
                        ("scope.project.id", RoleAssignment.project_id),
                        ("scope.domain.id", RoleAssignment.domain_id),
                        ("role.id", RoleAssignment.role_id)):
        if params.get(key):
            query = query.where(column == params[key])
    on_system = system_filter(params)
    names = bool_query(params.get("include_names"), "include_names") or False
    if params.get("scope.OS-INHERIT:inherited_to"):
        raise BadRequest("Inherited role assignments are not supported.")
    with controller(request).db.session() as session:
        out = []
        if not on_system:
            rows = list(session.scalars(query.order_by(RoleAssignment.id)))
            out = [_assignment(session, request, a, names) for a in rows]
        if on_system is not False:
            out += system_assignments(session, base(request), params, names)
    return {"role_assignments": out, "links": {"self": str(request.url)}}


def _assignment(session: Session, request: Request, a: RoleAssignment,
                names: bool) -> dict[str, Any]:
    kind, target_id = ("project", a.project_id) if a.project_id else ("domain", a.domain_id)
    role: dict[str, Any] = {"id": a.role_id}
    user: dict[str, Any] = {"id": a.user_id}
    scope: dict[str, Any] = {"id": target_id}
    if names:
        role_obj, user_obj = session.get(Role, a.role_id), session.get(User, a.user_id)
        role["name"] = role_obj.name
        user_domain = session.get(Domain, user_obj.domain_id)
        user.update(name=user_obj.name, domain={"id": user_domain.id, "name": user_domain.name})
        if kind == "project":
            project = session.get(Project, target_id)
            pdomain = session.get(Domain, project.domain_id)
            scope.update(name=project.name, domain={"id": pdomain.id, "name": pdomain.name})
        else:
            scope["name"] = session.get(Domain, target_id).name
    link = f"{base(request)}/v3/{kind}s/{target_id}/users/{a.user_id}/roles/{a.role_id}"
    return {"role": role, "user": user, "scope": {kind: scope}, "links": {"assignment": link}}
