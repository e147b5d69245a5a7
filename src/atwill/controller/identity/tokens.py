"""Issue, validate and revoke Fernet tokens; compute effective roles and the catalog."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ...config import Settings
from ...core.catalog_rebase import Rebase, origin, rebase_for
from ...core.errors import Unauthorized
from ...core.policy import ADMIN_PROJECT_DOMAIN_ID, ADMIN_PROJECT_NAME, Credentials
from ...core.tokens import TokenPayload, format_time, new_audit_id
from ..context import Controller
from ..db.base import utcnow
from ..db.identity import SystemRoleAssignment
from ..db.models import (
    ControllerRecord,
    Domain,
    Endpoint,
    ImpliedRole,
    Project,
    Revocation,
    Role,
    RoleAssignment,
    Service,
    User,
)
from .lookups import find_domain


@dataclasses.dataclass
class ValidatedToken:
    payload: TokenPayload
    user: User
    user_domain: Domain
    project: Project | None
    domain: Domain | None
    roles: list[Role]

    @property
    def credentials(self) -> Credentials:
        project = self.project
        return Credentials(
            user_id=self.user.id, roles=frozenset(r.name for r in self.roles),
            project_id=project.id if project else None,
            domain_id=self.domain.id if self.domain else None,
            is_admin_project=project is not None and project.name == ADMIN_PROJECT_NAME
            and project.domain_id == ADMIN_PROJECT_DOMAIN_ID, system=self.payload.system)


def effective_roles(session: Session, user_id: str, project_id: str | None = None,
                    domain_id: str | None = None, system: bool = False) -> list[Role]:
    """Roles assigned on the target plus every role they imply, transitively."""
    if system:
        ids = set(session.scalars(select(SystemRoleAssignment.role_id).where(
            SystemRoleAssignment.user_id == user_id)))
    elif project_id is None and domain_id is None:
        return []
    else:
        target = (RoleAssignment.project_id == project_id if project_id
                  else RoleAssignment.domain_id == domain_id)
        ids = set(session.scalars(select(RoleAssignment.role_id).where(
            RoleAssignment.user_id == user_id, target)))
    frontier = set(ids)
    while frontier:
        implied = set(session.scalars(select(ImpliedRole.implied_role_id).where(
            ImpliedRole.prior_role_id.in_(frontier))))
        frontier = implied - ids
        ids |= implied
    if not ids:
        return []
    return list(session.scalars(select(Role).where(Role.id.in_(ids)).order_by(Role.name)))


def build_catalog(session: Session, project_id: str | None = None,
                  rebase: Rebase | None = None) -> list[dict[str, Any]]:
    """The catalog of a token; with rebase, the cloud's own endpoints name the answering
    controller (core/catalog_rebase.py), the registered controllers' URLs among those
    known (read at most every REGISTERED_TTL seconds, not per token)."""
    if rebase is not None:
        rebase = _with_registered(rebase, registered_urls(session))
    catalog = []
    for service in session.scalars(select(Service).where(Service.enabled.is_(True))):
        endpoints = session.scalars(select(Endpoint).where(
            Endpoint.service_id == service.id, Endpoint.enabled.is_(True)))
        urls = [(e, endpoint_url(rebase.url(e.url, e.interface) if rebase else e.url,
                                 project_id)) for e in endpoints]
        catalog.append({
            "id": service.id, "type": service.type, "name": service.name,
            "endpoints": [{"id": e.id, "interface": e.interface, "region": e.region_id,
                           "region_id": e.region_id, "url": url} for e, url in urls if url],
        })
    return catalog


def catalog_rebase(settings: Settings) -> Rebase:
    """How this controller answers the catalog's URLs (core/catalog_rebase.py): its own
    URL, public_endpoint and the URL the cloud's init wrote the rows with (an added
    controller's bundle names it) are controllers; controller_urls is not read (it may
    name a load balancer that is no controller). build_catalog adds the registered ones."""
    return _rebase(settings.public_url, settings.public_endpoint, _init_url(settings.state_dir))


@functools.lru_cache(maxsize=8)
def _rebase(own: str, public_endpoint: str, init_url: str) -> Rebase:
    return rebase_for(own, public_endpoint, [init_url] if init_url else [])


@functools.lru_cache(maxsize=8)
def _init_url(state_dir: Path) -> str:
    """The catalog URL of the controller whose bundle made this one (controller-added.json,
    ha_controllers_bundle.install); empty on a cloud's first controller."""
    from ..ha_controllers_bundle import ADDED_FILE

    try:
        url = json.loads((state_dir / ADDED_FILE).read_text()).get("cloud_url")
    except (OSError, ValueError, AttributeError):
        return ""
    return url if isinstance(url, str) else ""


REGISTERED_TTL = 10.0  # seconds between reads of the registered controllers' URLs
_registered: dict[str, tuple[float, frozenset[str]]] = {}  # database URL -> (read, URLs)


def registered_urls(session: Session) -> frozenset[str]:
    """Every URL a controller registered in this database (controllers.register) that this
    process has seen: the table is read at most every REGISTERED_TTL seconds, and a
    controller swept since (stopped) stays known, so its rows are still rebased."""
    key = str(session.get_bind().url)
    read_at, urls = _registered.get(key, (float("-inf"), frozenset()))
    now = time.monotonic()
    if now - read_at >= REGISTERED_TTL:
        urls = urls | frozenset(session.scalars(select(ControllerRecord.public_url)))
        _registered[key] = (now, urls)
    return urls


@functools.lru_cache(maxsize=64)
def _with_registered(rebase: Rebase, urls: frozenset[str]) -> Rebase:
    known = {o for o in map(origin, urls) if o}
    return dataclasses.replace(rebase, known=rebase.known | known)


PROJECT_TEMPLATES = ("%(project_id)s", "$(project_id)s", "%(tenant_id)s", "$(tenant_id)s")


def endpoint_url(url: str, project_id: str | None) -> str | None:
    """An endpoint URL with the token's project filled in, as Keystone's catalog does.

    Orchestration's URL names the project; without a project scope it is left out.
    """
    if not any(t in url for t in PROJECT_TEMPLATES):
        return url
    if project_id is None:
        return None
    for template in PROJECT_TEMPLATES:
        url = url.replace(template, project_id)
    return url


class TokenService:
    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl

    def issue(self, session: Session, user: User, project: Project | None = None,
              domain: Domain | None = None, methods: tuple[str, ...] = ("password",),
              expires_at: dt.datetime | None = None, audit_id: str | None = None,
              system: bool = False) -> tuple[str, ValidatedToken]:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        limit = now + dt.timedelta(seconds=self.ctl.settings.token_ttl)
        payload = TokenPayload(
            user_id=user.id, methods=methods, issued_at=now,
            expires_at=min(expires_at, limit) if expires_at else limit,
            audit_id=audit_id or new_audit_id(),
            project_id=project.id if project else None, domain_id=domain.id if domain else None,
            system=system)
        token = self.ctl.keys.fernet().encrypt(payload.pack()).decode()
        return token, self._load(session, payload)

    def decode(self, token: str) -> TokenPayload:
        try:
            raw = self.ctl.keys.fernet().decrypt(token.encode())
            return TokenPayload.unpack(raw)
        except (InvalidToken, ValueError, KeyError, TypeError):
            raise Unauthorized("The request you have made requires authentication.") from None

    def validate(self, session: Session, token: str) -> ValidatedToken:
        payload = self.decode(token)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        if payload.expires_at <= now:
            raise Unauthorized("The token has expired.")
        if self._revoked(session, payload):
            raise Unauthorized("The token has been revoked.")
        return self._load(session, payload)

    def _revoked(self, session: Session, payload: TokenPayload) -> bool:
        user_rule = (Revocation.user_id == payload.user_id) & (
            Revocation.issued_before >= payload.issued_at.replace(microsecond=0)) & or_(
            Revocation.project_id.is_(None), Revocation.project_id == payload.project_id)
        query = select(Revocation.id).where(
            or_(Revocation.audit_id == payload.audit_id, user_rule)).limit(1)
        return session.scalar(query) is not None

    def _load(self, session: Session, payload: TokenPayload) -> ValidatedToken:
        denied = Unauthorized("The request you have made requires authentication.")
        user = session.get(User, payload.user_id)
        if user is None or not user.enabled:
            raise denied
        user_domain = session.get(Domain, user.domain_id)
        project = domain = None
        if payload.project_id:
            project = session.get(Project, payload.project_id)
            if project is None or not project.enabled:
                raise denied
        if payload.domain_id:
            domain = session.get(Domain, payload.domain_id)
            if domain is None or not domain.enabled:
                raise denied
        roles = effective_roles(session, user.id, payload.project_id, payload.domain_id,
                                payload.system)
        if (project or domain or payload.system) and not roles:
            raise denied
        return ValidatedToken(payload, user, user_domain, project, domain, roles)

    def revoke(self, session: Session, payload: TokenPayload) -> None:
        session.add(Revocation(audit_id=payload.audit_id, issued_before=utcnow(),
                               expires_at=payload.expires_at))

    def revoke_user(self, session: Session, user_id: str, project_id: str | None = None) -> None:
        """Revoke every token of a user (optionally on one project) issued until now."""
        expires = utcnow() + dt.timedelta(seconds=self.ctl.settings.token_ttl + 1)
        session.add(Revocation(user_id=user_id, project_id=project_id,
                               issued_before=utcnow(), expires_at=expires))

    def body(self, session: Session, validated: ValidatedToken,
             with_catalog: bool = True) -> dict[str, Any]:
        payload, user = validated.payload, validated.user
        token: dict[str, Any] = {
            "methods": list(payload.methods),
            "user": {"id": user.id, "name": user.name, "password_expires_at": None,
                     "domain": {"id": validated.user_domain.id,
                                "name": validated.user_domain.name}},
            "audit_ids": [payload.audit_id],
            "issued_at": format_time(payload.issued_at),
            "expires_at": format_time(payload.expires_at),
        }
        if validated.project:
            project = validated.project
            pdomain = session.get(Domain, project.domain_id)
            token["project"] = {"id": project.id, "name": project.name,
                                "domain": {"id": pdomain.id, "name": pdomain.name}}
            token["is_domain"] = False
        if validated.domain:
            token["domain"] = {"id": validated.domain.id, "name": validated.domain.name}
        if payload.system:
            token["system"] = {"all": True}
        if validated.project or validated.domain or payload.system:
            token["roles"] = [{"id": r.id, "name": r.name} for r in validated.roles]
            if with_catalog:
                token["catalog"] = build_catalog(
                    session, validated.project.id if validated.project else None,
                    catalog_rebase(self.ctl.settings))
        return {"token": token}


def lookup_scope_project(session: Session, scope: dict[str, Any]) -> Project:
    if "id" in scope:
        project = session.get(Project, str(scope["id"]))
    else:
        domain = find_domain(session, scope.get("domain") or {})
        project = session.scalar(select(Project).where(
            Project.name == str(scope.get("name")), Project.domain_id == domain.id))
    if project is None:
        raise Unauthorized("The project to scope to could not be found.")
    return project
