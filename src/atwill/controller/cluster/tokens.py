"""Join tokens: made random, stored hashed, limited in time and uses, revocable."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import Forbidden, NotFound
from ..db.base import iso, utcnow
from ..db.models import JoinToken
from . import join_aggregates


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(session: Session, ttl: int, uses: int, description: str,
           aggregates: list[str] | None = None) -> tuple[str, JoinToken]:
    """A new token; the aggregates it carries must exist and agree on one zone."""
    refused = "Cannot create the join token"
    aggs = join_aggregates.resolve(session, aggregates or [], refused)
    join_aggregates.check_zones(session, None, aggs, refused)
    secret = "atw_" + secrets.token_urlsafe(24)
    token = JoinToken(token_hash=digest(secret), description=description, max_uses=uses,
                      expires_at=utcnow() + dt.timedelta(seconds=ttl),
                      aggregates=[a.name for a in aggs])
    session.add(token)
    session.flush()
    return secret, token


def state(token: JoinToken, now: dt.datetime | None = None) -> str:
    now = now or utcnow()
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at <= now:
        return "expired"
    if token.uses >= token.max_uses:
        return "used"
    return "valid"


def to_view(token: JoinToken) -> dict:
    return {"id": token.id, "description": token.description,
            "expires_at": iso(token.expires_at), "uses": token.uses,
            "max_uses": token.max_uses, "state": state(token),
            "aggregates": list(token.aggregates or [])}


def listing(session: Session) -> list[JoinToken]:
    return list(session.scalars(select(JoinToken).order_by(JoinToken.created_at)))


def find(session: Session, ident: str) -> JoinToken:
    """By id or a unique id prefix (as printed by 'token list')."""
    token = session.get(JoinToken, ident)
    if token is None and len(ident) >= 4:
        matches = list(session.scalars(select(JoinToken).where(JoinToken.id.startswith(ident))))
        token = matches[0] if len(matches) == 1 else None
    if token is None:
        raise NotFound(f"No join token {ident}.")
    return token


def revoke(session: Session, ident: str) -> JoinToken:
    token = find(session, ident)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def consume(session: Session, secret: str) -> JoinToken:
    """Count one use of a valid token, locking its row; each failure says why."""
    query = select(JoinToken).where(JoinToken.token_hash == digest(secret)).with_for_update()
    token = session.scalar(query)
    if token is None:
        raise Forbidden("Join refused: the join token is not known to this controller.")
    why = state(token)
    if why == "revoked":
        raise Forbidden(f"Join refused: the join token was revoked at {iso(token.revoked_at)}.")
    if why == "expired":
        raise Forbidden(f"Join refused: the join token expired at {iso(token.expires_at)}.")
    if why == "used":
        raise Forbidden(f"Join refused: the join token has been used up "
                        f"({token.uses} of {token.max_uses} uses).")
    token.uses += 1
    return token
