"""Idempotent bootstrap of the database: domain, roles, admin, catalog, quota defaults."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.passwords import hash_password
from ..core.quotas import DEFAULTS
from .context import Controller
from .db.identity import SystemRoleAssignment
from .db.models import (
    Domain,
    Endpoint,
    ImpliedRole,
    Project,
    QuotaClass,
    Region,
    Role,
    RoleAssignment,
    Service,
    User,
)
from .db.session import is_initialised, migrate
from .network.defaults import ensure_defaults

ROLES = ("admin", "member", "reader")
IMPLICATIONS = (("admin", "member"), ("member", "reader"))


def catalog_urls(base_url: str) -> dict[str, tuple[str, str]]:
    """Service type -> (name, url) for this controller."""
    return {
        "identity": ("keystone", f"{base_url}/identity"),
        "compute": ("nova", f"{base_url}/compute/v2.1"),
        "image": ("glance", f"{base_url}/image"),
        "network": ("neutron", f"{base_url}/network"),
        # Heat's URL names the project; the token's catalog fills it in, as Keystone's.
        "orchestration": ("heat", f"{base_url}/orchestration/v1/%(project_id)s"),
        # Block Storage v3 without a project id in the URL (Cinder 3.67): the official
        # type, which openstacksdk and the CLI look up first, and devstack's alias.
        "block-storage": ("cinder", f"{base_url}/volume/v3"),
        "volumev3": ("cinderv3", f"{base_url}/volume/v3"),
    }


def bootstrap(ctl: Controller, admin_password: str) -> list[str]:
    """Bring the database to the wanted base state; returns what was changed."""
    changes: list[str] = []
    fresh = not is_initialised(ctl.db.engine)
    migrate(ctl.db.engine)
    if fresh:
        changes.append("created the database schema")
    with ctl.db.session() as session:
        _identity(session, admin_password, changes)
        _catalog(session, ctl, changes)
        _quota_defaults(session, changes)
        admin = session.scalar(select(Project).where(Project.name == "admin",
                                                     Project.domain_id == "default"))
        public = {"public_cidr": ctl.settings.public_range} if ctl.settings.public_range else {}
        changes += ensure_defaults(session, admin.id, **public)
    return changes


def _get_or_add(session: Session, model, changes: list[str], what: str, **match):
    obj = session.scalar(select(model).filter_by(**match))
    if obj is None:
        obj = model(**match)
        session.add(obj)
        session.flush()
        changes.append(f"created {what}")
    return obj


def _identity(session: Session, admin_password: str, changes: list[str]) -> None:
    domain = session.get(Domain, "default")
    if domain is None:
        domain = Domain(id="default", name="Default", description="The default domain")
        session.add(domain)
        session.flush()
        changes.append("created domain Default")
    roles = {name: _get_or_add(session, Role, changes, f"role {name}", name=name)
             for name in ROLES}
    for prior, implied in IMPLICATIONS:
        if session.get(ImpliedRole, (roles[prior].id, roles[implied].id)) is None:
            session.add(ImpliedRole(prior_role_id=roles[prior].id,
                                    implied_role_id=roles[implied].id))
            changes.append(f"made {prior} imply {implied}")
    project = _get_or_add(session, Project, changes, "project admin",
                          name="admin", domain_id=domain.id)
    user = session.scalar(select(User).where(User.name == "admin",
                                             User.domain_id == domain.id))
    if user is None:
        user = User(name="admin", domain_id=domain.id, default_project_id=project.id,
                    password_hash=hash_password(admin_password))
        session.add(user)
        session.flush()
        changes.append("created user admin")
    _get_or_add(session, RoleAssignment, changes, "admin role for admin on project admin",
                user_id=user.id, project_id=project.id, role_id=roles["admin"].id)
    # As keystone-manage bootstrap: the admin is also admin on the system (cloud admin).
    _get_or_add(session, SystemRoleAssignment, changes, "admin role for admin on the system",
                user_id=user.id, role_id=roles["admin"].id)


def _catalog(session: Session, ctl: Controller, changes: list[str]) -> None:
    region_id = ctl.settings.region
    if session.get(Region, region_id) is None:
        session.add(Region(id=region_id, description=""))
        session.flush()
        changes.append(f"created region {region_id}")
    for kind, (name, url) in catalog_urls(ctl.base_url).items():
        service = _get_or_add(session, Service, changes, f"{kind} service", type=kind, name=name)
        for interface in ("public", "internal", "admin"):
            endpoint = session.scalar(select(Endpoint).where(
                Endpoint.service_id == service.id, Endpoint.interface == interface,
                Endpoint.region_id == region_id))
            if endpoint is None:
                session.add(Endpoint(service_id=service.id, interface=interface,
                                     region_id=region_id, url=url))
                changes.append(f"created {interface} {kind} endpoint {url}")
            elif endpoint.url != url:
                endpoint.url = url
                changes.append(f"moved {interface} {kind} endpoint to {url}")


def _quota_defaults(session: Session, changes: list[str]) -> None:
    have = set(session.scalars(select(QuotaClass.resource).where(
        QuotaClass.class_name == "default")))
    missing = [r for r in DEFAULTS if r not in have]
    for resource in missing:
        session.add(QuotaClass(class_name="default", resource=resource,
                               hard_limit=DEFAULTS[resource]))
    if missing:
        changes.append("set default quotas")
