"""/v3/users, password changes and a user's projects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from ...core.errors import BadRequest, Conflict, Unauthorized
from ...core.passwords import hash_password
from ...core.policy import Credentials
from ..db.base import utcnow
from ..db.models import Domain, Project, RoleAssignment, User
from ..service import authorize, caller, controller, field, json_body, wrapped
from . import lockout, views
from .auth import throttle
from .common import base, filtered, get_or_404, listing, name_of
from .tokens import TokenService

router = APIRouter()
MAX_PASSWORD = 4096


def _password(data: dict[str, Any], key: str = "password") -> str | None:
    value = field(data, key, str)
    if value is not None and (not value or len(value) > MAX_PASSWORD):
        raise BadRequest(f"Invalid input for field '{key}': 1 to {MAX_PASSWORD} characters.")
    return value


@router.get("/v3/users")
def users_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:list_users")
    with controller(request).db.session() as session:
        query = filtered(select(User), User, request, "name", "domain_id", "enabled")
        items = [views.user(u, base(request)) for u in session.scalars(query.order_by(User.name))]
    return listing(request, "users", items)


@router.post("/v3/users")
def users_post(request: Request, body: dict = Depends(json_body),
               creds: Credentials = Depends(caller)) -> JSONResponse:
    authorize(creds, "identity:create_user")
    data = wrapped(body, "user")
    domain_id = field(data, "domain_id", str) or "default"
    password = _password(data)
    with controller(request).db.session() as session:
        if session.get(Domain, domain_id) is None:
            raise BadRequest(f"Domain {domain_id} does not exist.")
        name = name_of(data, "user")
        if session.scalar(select(User.id).where(User.name == name, User.domain_id == domain_id)):
            raise Conflict(f"Conflict occurred attempting to store user - Duplicate entry "
                           f"found with name {name} at domain ID {domain_id}.")
        project_id = field(data, "default_project_id", str)
        if project_id and session.get(Project, project_id) is None:
            raise BadRequest(f"Project {project_id} does not exist.")
        user = User(name=name, domain_id=domain_id,
                    password_hash=hash_password(password) if password else None,
                    enabled=field(data, "enabled", bool, default=True),
                    email=field(data, "email", str), description=field(data, "description", str),
                    default_project_id=project_id)
        session.add(user)
        session.flush()
        out = views.user(user, base(request))
    return JSONResponse({"user": out}, status_code=201)


@router.get("/v3/users/{user_id}")
def user_get(user_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:get_user", user_id=user_id)
    with controller(request).db.session() as session:
        return {"user": views.user(get_or_404(session, User, user_id, "user"), base(request))}


@router.patch("/v3/users/{user_id}")
def user_patch(user_id: str, request: Request, body: dict = Depends(json_body),
               creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:update_user")
    data = wrapped(body, "user")
    ctl = controller(request)
    with ctl.db.session() as session:
        user = get_or_404(session, User, user_id, "user")
        if "name" in data:
            user.name = name_of(data, "user")
        for key in ("email", "description"):
            if key in data:
                setattr(user, key, field(data, key, str))
        if "default_project_id" in data:
            project_id = field(data, "default_project_id", str)
            if project_id and session.get(Project, project_id) is None:
                raise BadRequest(f"Project {project_id} does not exist.")
            user.default_project_id = project_id
        revoke = False
        if "enabled" in data:
            user.enabled = field(data, "enabled", bool, required=True)
            revoke = not user.enabled
        if "password" in data:
            user.password_hash = hash_password(_password(data, "password") or "")
            user.password_changed_at = utcnow()
            revoke = True
        if revoke:
            TokenService(ctl).revoke_user(session, user.id)
        session.flush()
        return {"user": views.user(user, base(request))}


@router.delete("/v3/users/{user_id}")
def user_delete(user_id: str, request: Request,
                creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:delete_user")
    ctl = controller(request)
    with ctl.db.session() as session:
        user = get_or_404(session, User, user_id, "user")
        if user.id == creds.user_id:
            raise BadRequest("A user cannot delete itself.")
        TokenService(ctl).revoke_user(session, user.id)
        session.delete(user)
    return Response(status_code=204)


@router.post("/v3/users/{user_id}/password")
def user_password_post(user_id: str, request: Request, body: dict = Depends(json_body),
                       creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:change_password", user_id=user_id)
    data = wrapped(body, "user")
    original = field(data, "original_password", str, required=True, where="user")
    password = _password(data) or ""
    if not password:
        raise BadRequest("Invalid input: 'user.password' is a required property.")
    ctl = controller(request)
    throttle(request)
    with ctl.db.session() as session:
        user = get_or_404(session, User, user_id, "user")
        if not lockout.password_matches(ctl, request.app.state.password_slots, user, original):
            raise Unauthorized("The original password is not correct.")
        user.password_hash = hash_password(password)
        user.password_changed_at = utcnow()
        TokenService(ctl).revoke_user(session, user.id)
    return Response(status_code=204)


@router.get("/v3/users/{user_id}/projects")
def user_projects_get(user_id: str, request: Request,
                      creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:list_user_projects", user_id=user_id)
    with controller(request).db.session() as session:
        get_or_404(session, User, user_id, "user")
        ids = select(RoleAssignment.project_id).where(RoleAssignment.user_id == user_id)
        query = filtered(select(Project).where(Project.id.in_(ids)), Project, request,
                         "name", "domain_id", "enabled")
        rows = session.scalars(query.order_by(Project.name))
        items = [views.project(p, base(request)) for p in rows]
    return listing(request, "projects", items)
