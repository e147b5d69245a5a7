"""Server-side browser sessions: the cookie holds a random value, the row holds the token.

The row's key is the SHA-256 of the cookie value, so the table alone opens nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy import delete

from ..context import Controller
from ..db.base import utcnow
from ..db.dashboard import DashboardSession

COOKIE = "atwill_dashboard"
LOGIN_COOKIE = "atwill_dashboard_login"


def new_secret() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def key_of(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


@dataclasses.dataclass
class Sess:
    key: str
    token: str
    csrf: str
    user_id: str
    user_name: str
    domain: str
    project_id: str | None
    project_name: str | None
    roles: list[str]
    expires_at: dt.datetime

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(presented.encode(), self.csrf.encode())


def _expiry(token: dict[str, Any]) -> dt.datetime:
    stamp = token["expires_at"].rstrip("Z")
    return dt.datetime.fromisoformat(stamp).replace(microsecond=0)


def _scope(token: dict[str, Any]) -> dict[str, Any]:
    project = token.get("project") or {}
    return {"project_id": project.get("id"), "project_name": project.get("name"),
            "roles": " ".join(sorted(r["name"] for r in token.get("roles", []))),
            "expires_at": _expiry(token)}


def create(ctl: Controller, token_id: str, token: dict[str, Any]) -> str:
    """A new session for a token body; the cookie value to give the browser."""
    cookie = new_secret()
    row = DashboardSession(
        id=key_of(cookie), token=token_id, csrf=new_secret(), user_id=token["user"]["id"],
        user_name=token["user"]["name"], domain=token["user"]["domain"]["name"],
        **_scope(token))
    with ctl.db.session() as session:
        # Expired sessions go when someone logs in: no sweeper needed.
        session.execute(delete(DashboardSession).where(DashboardSession.expires_at < utcnow()))
        session.add(row)
    return cookie


def load(ctl: Controller, cookie: str | None) -> Sess | None:
    if not cookie or len(cookie) > 128:
        return None
    with ctl.db.session() as session:
        row = session.get(DashboardSession, key_of(cookie))
        if row is None:
            return None
        if row.expires_at <= utcnow():
            session.delete(row)
            return None
        return Sess(row.id, row.token, row.csrf, row.user_id, row.user_name, row.domain,
                    row.project_id, row.project_name, row.roles.split(), row.expires_at)


def rescope(ctl: Controller, key: str, token_id: str, token: dict[str, Any]) -> None:
    """The session now holds a token on another project."""
    with ctl.db.session() as session:
        row = session.get(DashboardSession, key)
        if row is not None:
            row.token = token_id
            for name, value in _scope(token).items():
                setattr(row, name, value)


def remove(ctl: Controller, key: str) -> None:
    with ctl.db.session() as session:
        session.execute(delete(DashboardSession).where(DashboardSession.id == key))
