"""Tokens stay where they were issued: the issuer vouches for its tokens to its peers,
and a receiving cloud maps what was vouched for to a local project and role."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from ...core.policy import Credentials
from ...core.scope_rules import ANY, RemoteIdentity, Rule, TrustCache, matching, shadow_user_id
from ...core.text import clean_name
from ...core.tokens import format_time
from ..context import Controller
from ..db.identity import Domain, ImpliedRole, Project, Role, User
from ..db.peers import Peer, PeerMapping
from ..identity.tokens import TokenService
from . import client
from .client import PeerRef

_caches: dict[int, TrustCache] = {}


def cache_of(ctl: Controller) -> TrustCache:
    cache = _caches.get(id(ctl))
    if cache is None:
        cache = _caches[id(ctl)] = TrustCache(ctl.settings.peer_token_cache)
    return cache


def vouch(session: Session, ctl: Controller, token: str) -> dict[str, Any]:
    """The issuer's answer to a peer: whose project-scoped token this is (404 if none)."""
    try:
        validated = TokenService(ctl).validate(session, token)
    except Unauthorized as err:
        raise NotFound(f"This cloud does not vouch for the token: {err.message}") from None
    if validated.project is None:
        raise NotFound("This cloud vouches only for project-scoped tokens.")
    user: User = validated.user
    project: Project = validated.project
    # Names mean something only in their domain: the receiving cloud's rules match a
    # name only together with its domain (Keystone's token body says them the same way).
    return {"user": {"id": user.id, "name": user.name,
                     "domain": _domain(session, user.domain_id)},
            "project": {"id": project.id, "name": project.name,
                        "domain": _domain(session, project.domain_id)},
            "expires_at": format_time(validated.payload.expires_at)}


def _domain(session: Session, domain_id: str) -> dict[str, str]:
    domain = session.get(Domain, domain_id)
    return {"id": domain_id, "name": domain.name if domain else ""}


def _identity(data: dict[str, Any]) -> RemoteIdentity:
    def domain(of: dict[str, Any]) -> tuple[str, str]:
        found = of.get("domain") if isinstance(of.get("domain"), dict) else {}
        return str(found.get("id") or ""), str(found.get("name") or "")

    user, project = data["user"], data["project"]
    return RemoteIdentity(user["id"], user["name"], project["id"], project["name"],
                          domain(user), domain(project))


def ask_issuer(ctl: Controller, peer: PeerRef, token: str) -> RemoteIdentity:
    """What the peer says about its token, cached briefly; 401 if it does not vouch."""
    cache = cache_of(ctl)
    known = cache.get(peer.id, token)
    if known is not None:
        return known
    timeout = ctl.settings.peer_timeout
    try:
        with client.sync_client(peer, timeout) as http:
            resp = http.post("/cluster/v1/peers/validate", json={"token": token})
    except httpx.HTTPError as err:
        raise client.unreachable(peer.name, timeout, err) from None
    if resp.status_code != 200:
        raise Unauthorized(f"The peer cloud {peer.name} does not vouch for this token "
                           "(unknown, expired or revoked there).")
    who = _identity(resp.json())
    cache.put(peer.id, token, who)
    return who


def credentials_for(session: Session, peer_id: str, peer_name: str,
                    who: RemoteIdentity) -> Credentials:
    """The local identity a peer's user acts as; 403 when no rule maps them."""
    rules = [Rule(m.remote_project, m.remote_user, m.local_project_id, m.role,
                  m.remote_project_domain, m.remote_user_domain)
             for m in session.scalars(select(PeerMapping).where(PeerMapping.peer_id == peer_id))]
    rule = matching(rules, who)
    project = session.get(Project, rule.local_project_id) if rule else None
    if rule is None or project is None or not project.enabled:
        raise Forbidden(f"No mapping lets user {who.user_name} of project {who.project_name} "
                        f"(domain {who.project_domain[1] or who.project_domain[0] or '?'}) "
                        f"at the peer cloud {peer_name} act in this cloud.")
    # Never the cloud's admin through a peer, whatever the role: is_admin_project is off.
    return Credentials(user_id=shadow_user_id(peer_id, who.user_id),
                       roles=frozenset(implied_roles(session, rule.role)),
                       project_id=project.id)


def implied_roles(session: Session, name: str) -> set[str]:
    role = session.scalar(select(Role).where(Role.name == name))
    if role is None:
        return set()
    ids, frontier = {role.id}, {role.id}
    while frontier:
        implied = set(session.scalars(select(ImpliedRole.implied_role_id).where(
            ImpliedRole.prior_role_id.in_(frontier))))
        frontier = implied - ids
        ids |= implied
    return set(session.scalars(select(Role.name).where(Role.id.in_(ids))))


def add_mapping(session: Session, peer: Peer, remote_project: str, remote_user: str,
                local_project: str, role: str, remote_domain: str = "Default",
                remote_user_domain: str | None = None) -> PeerMapping:
    remote_project = clean_name(remote_project, "remote_project", required=True) or ""
    remote_user = clean_name(remote_user, "remote_user", required=True) or ANY
    remote_domain = clean_name(remote_domain, "remote_domain", required=True) or ""
    remote_user_domain = clean_name(remote_user_domain or remote_domain,
                                    "remote_user_domain", required=True) or ""
    project = session.get(Project, local_project) or session.scalar(
        select(Project).where(Project.name == local_project,
                              Project.domain_id == "default"))
    if project is None:
        raise BadRequest(f"No local project {local_project!r} (name in the default domain, "
                         "or id).")
    if session.scalar(select(Role.id).where(Role.name == role)) is None:
        raise BadRequest(f"No role named {role!r}.")
    key = {"peer_id": peer.id, "remote_project": remote_project, "remote_user": remote_user,
           "remote_project_domain": remote_domain, "remote_user_domain": remote_user_domain}
    if session.scalar(select(PeerMapping.id).filter_by(**key)) is not None:
        raise Conflict(f"Peer {peer.name} has a mapping for user {remote_user} of project "
                       f"{remote_project} (domain {remote_domain}) already.")
    mapping = PeerMapping(peer_id=peer.id, remote_project=remote_project,
                          remote_user=remote_user, remote_project_domain=remote_domain,
                          remote_user_domain=remote_user_domain,
                          local_project_id=project.id, role=role)
    session.add(mapping)
    session.flush()
    return mapping


def mappings(session: Session, peer: Peer) -> list[PeerMapping]:
    return list(session.scalars(select(PeerMapping).where(PeerMapping.peer_id == peer.id)
                                .order_by(PeerMapping.created_at, PeerMapping.id)))


def mapping_view(mapping: PeerMapping) -> dict[str, Any]:
    return {"id": mapping.id, "remote_project": mapping.remote_project,
            "remote_domain": mapping.remote_project_domain,
            "remote_user": mapping.remote_user,
            "remote_user_domain": mapping.remote_user_domain,
            "local_project_id": mapping.local_project_id,
            "role": mapping.role}
