"""/v3/auth: issue, validate and revoke tokens; the caller's catalog, projects, domains."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ...core.errors import BadRequest, NotFound, TooManyRequests, Unauthorized
from ...core.policy import Credentials
from ...core.ratelimit import Slots, source_key
from ..context import Controller
from ..db.models import Domain, Project, RoleAssignment
from ..service import authorize, caller, controller, json_body
from . import lockout, token_cache, views
from .lookups import find_auth_user, find_domain
from .system import system_roles, system_scope
from .tokens import (
    TokenService,
    ValidatedToken,
    build_catalog,
    catalog_rebase,
    lookup_scope_project,
)

router = APIRouter()


@router.post("/v3/auth/tokens")
def tokens_post(request: Request, body: dict = Depends(json_body)) -> JSONResponse:
    ctl = controller(request)
    auth = body.get("auth")
    if not isinstance(auth, dict) or not isinstance(auth.get("identity"), dict):
        raise BadRequest("Invalid input: 'auth.identity' is a required object.")
    _throttle(request, auth["identity"])
    service = TokenService(ctl)
    with ctl.db.session() as session:
        user, methods, expires_at, audit_id = _authenticate(
            ctl, session, auth["identity"], request.app.state.password_slots)
        project, domain, system = _scope(session, auth.get("scope"), user)
        if system and not system_roles(session, user.id):
            raise Unauthorized(f"User {user.id} has no access to the system.")
        if (project or domain) and not _has_role(session, user.id, project, domain):
            raise Unauthorized("The user has no role on the requested scope.")
        token, validated = service.issue(session, user, project, domain, methods,
                                         expires_at, audit_id, system)
        nocatalog = "nocatalog" in request.query_params
        body_out = service.body(session, validated, with_catalog=not nocatalog)
    return JSONResponse(body_out, status_code=201, headers={"X-Subject-Token": token})


def _authenticate(ctl: Controller, session: Session, identity: dict[str, Any],
                  slots: Slots) -> tuple:
    methods = identity.get("methods")
    if not isinstance(methods, list) or not methods:
        raise BadRequest("Invalid input: 'auth.identity.methods' must be a non-empty array.")
    if "password" in methods:
        password = identity.get("password")
        user_ref = password.get("user") if isinstance(password, dict) else None
        if not isinstance(user_ref, dict) or not isinstance(user_ref.get("password"), str):
            raise BadRequest("Invalid input: 'password.user' with a 'password' is required.")
        user = find_auth_user(session, user_ref)
        if not lockout.password_matches(ctl, slots, user, user_ref["password"]):
            raise Unauthorized("The request you have made requires authentication.")
        if not user.enabled:
            raise Unauthorized("The user is disabled.")
        lockout.reset(session, user)
        return user, ("password",), None, None
    if "token" in methods:
        token_ref = identity.get("token")
        if not isinstance(token_ref, dict) or not isinstance(token_ref.get("id"), str):
            raise BadRequest("Invalid input: 'token.id' is required.")
        old = TokenService(ctl).validate(session, token_ref["id"])
        methods_out = tuple(dict.fromkeys((*old.payload.methods, "token")))
        return old.user, methods_out, old.payload.expires_at, None
    raise Unauthorized(f"Unsupported authentication method: {', '.join(map(str, methods))}.")


def _throttle(request: Request, identity: dict[str, Any]) -> None:
    """429 for a password login over its address's rate, before any hash is computed."""
    methods = identity.get("methods")
    if not isinstance(methods, list) or "password" not in methods:
        return
    throttle(request)


def throttle(request: Request) -> None:
    """429 once the client's address (its /64 for IPv6) is over its password rate."""
    source = source_key(request.client.host) if request.client else "-"
    wait = request.app.state.login_limiter.take(source)
    if wait:
        raise TooManyRequests("Too many password logins from this address; retry after "
                              f"{math.ceil(wait)} s.",
                              headers={"Retry-After": str(math.ceil(wait))})


def _scope(session: Session, scope: Any,
           user: Any) -> tuple[Project | None, Domain | None, bool]:
    """The requested scope: (project, domain, system), at most one of them set."""
    if scope is None:
        if user.default_project_id:
            project = session.get(Project, user.default_project_id)
            if project is not None and project.enabled:
                return project, None, False
        return None, None, False
    if scope == "unscoped":
        return None, None, False
    if not isinstance(scope, dict):
        raise BadRequest("Invalid input: 'auth.scope' must be an object.")
    if "system" in scope:
        return None, None, system_scope(scope)
    if isinstance(scope.get("project"), dict):
        project = lookup_scope_project(session, scope["project"])
        if not project.enabled:
            raise Unauthorized("The project is disabled.")
        return project, None, False
    if isinstance(scope.get("domain"), dict):
        return None, find_domain(session, scope["domain"]), False
    raise BadRequest("Invalid input: 'auth.scope' needs a project, a domain or the system.")


def _has_role(session: Session, user_id: str, project: Project | None,
              domain: Domain | None) -> bool:
    target = (RoleAssignment.project_id == project.id if project
              else RoleAssignment.domain_id == domain.id)
    return session.scalar(select(RoleAssignment.id).where(
        RoleAssignment.user_id == user_id, target).limit(1)) is not None


def _subject(request: Request, session: Session, ctl: Controller) -> ValidatedToken:
    subject = request.headers.get("x-subject-token")
    if not subject:
        raise BadRequest("The X-Subject-Token header is required.")
    try:
        return TokenService(ctl).validate(session, subject)
    except Unauthorized as err:
        raise NotFound(f"Could not find token: {err.message}") from None


@router.get("/v3/auth/tokens")
async def tokens_get(request: Request, creds: Credentials = Depends(caller)) -> JSONResponse:
    ctl = controller(request)
    subject = request.headers.get("x-subject-token", "")
    with_catalog = "nocatalog" not in request.query_params
    # Services validate every user request this way: the body is cached like a validation,
    # and a cached answer needs no worker thread.
    key = f"body:{with_catalog}:{subject}"
    cached = ctl.tokens.get(key)
    if cached is None:
        cached = await run_in_threadpool(_token_body, request, ctl, key, with_catalog)
    owner, body = cached
    _may_see(creds, owner, reading=True)
    return JSONResponse(body, headers={"X-Subject-Token": subject})


def _token_body(request: Request, ctl: Controller, key: str,
                with_catalog: bool) -> tuple[str, dict[str, Any]]:
    generation = token_cache.generation()
    with ctl.db.session() as session:
        validated = _subject(request, session, ctl)
        body = TokenService(ctl).body(session, validated, with_catalog=with_catalog)
    ctl.tokens.put(key, (validated.user.id, body), validated.payload.expires_at, generation)
    return validated.user.id, body


@router.head("/v3/auth/tokens")
def tokens_head(request: Request, creds: Credentials = Depends(caller)) -> Response:
    ctl = controller(request)
    with ctl.db.session() as session:
        _may_see(creds, _subject(request, session, ctl).user.id, reading=True)
    return Response(status_code=200)


@router.delete("/v3/auth/tokens")
def tokens_delete(request: Request, creds: Credentials = Depends(caller)) -> Response:
    ctl = controller(request)
    with ctl.db.session() as session:
        validated = _subject(request, session, ctl)
        _may_see_token(creds, validated)
        TokenService(ctl).revoke(session, validated.payload)
    return Response(status_code=204)


def _may_see_token(creds: Credentials, validated: ValidatedToken) -> None:
    _may_see(creds, validated.user.id)


def _may_see(creds: Credentials, owner: str, reading: bool = False) -> None:
    """Anyone may check their own token; only admin (or, to read, a system reader) may
    check somebody else's, as Keystone's validate_token and revoke_token rules."""
    if owner == creds.user_id or creds.is_admin or (reading and creds.system_reader):
        return
    raise NotFound("Could not find token.")


@router.get("/v3/auth/catalog")
def catalog_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:get_auth_catalog")
    if creds.unscoped:
        raise Unauthorized("An unscoped token has no catalog; scope it to a project.")
    ctl = controller(request)
    with ctl.db.session() as session:
        return {"catalog": build_catalog(session, rebase=catalog_rebase(ctl.settings)),
                "links": {"self": str(request.url)}}


@router.get("/v3/auth/projects")
def auth_projects_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:get_auth_projects")
    ctl = controller(request)
    with ctl.db.session() as session:
        projects = _assigned(session, creds.user_id, Project, RoleAssignment.project_id)
        base = ctl.base_url + "/identity"
        return {"projects": [views.project(p, base) for p in projects if p.enabled],
                "links": {"self": str(request.url), "next": None, "previous": None}}


@router.get("/v3/auth/domains")
def auth_domains_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:get_auth_domains")
    ctl = controller(request)
    with ctl.db.session() as session:
        domains = _assigned(session, creds.user_id, Domain, RoleAssignment.domain_id)
        base = ctl.base_url + "/identity"
        return {"domains": [views.domain(d, base) for d in domains if d.enabled],
                "links": {"self": str(request.url), "next": None, "previous": None}}


def _assigned(session: Session, user_id: str, model: Any, column: Any) -> list:
    ids = select(column).where(RoleAssignment.user_id == user_id, column.is_not(None))
    return list(session.scalars(select(model).where(model.id.in_(ids)).order_by(model.name)))
