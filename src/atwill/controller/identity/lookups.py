"""Find identity objects by id or by name within a domain, as auth bodies name them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import Unauthorized
from ..db.models import Domain, User


def find_domain(session: Session, ref: dict[str, Any]) -> Domain:
    if not isinstance(ref, dict):
        raise Unauthorized("A domain is required (by id or name).")
    if "id" in ref:
        domain = session.get(Domain, str(ref["id"]))
    elif "name" in ref:
        domain = session.scalar(select(Domain).where(Domain.name == str(ref["name"])))
    else:
        raise Unauthorized("A domain is required (by id or name).")
    if domain is None or not domain.enabled:
        raise Unauthorized("The domain could not be found or is disabled.")
    return domain


def find_auth_user(session: Session, ref: dict[str, Any]) -> User | None:
    """The user named in a password method; None when there is none (no hint why)."""
    if "id" in ref:
        return session.get(User, str(ref["id"]))
    if "name" not in ref:
        raise Unauthorized("A user is required (by id, or by name and domain).")
    domain = find_domain(session, ref.get("domain") or {})
    return session.scalar(select(User).where(
        User.name == str(ref["name"]), User.domain_id == domain.id))
