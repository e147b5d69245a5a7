"""Password lockout in the database: failures counted atomically, success resets.

Counts are changed with single UPDATE statements (never read-modify-write), so
concurrent failed logins on any number of controller processes are all counted. A
Core UPDATE does not mark identity as changed, so failed logins do not empty the
token cache.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, case, update
from sqlalchemy.orm import Session

from ...config import Settings
from ...core.errors import TooManyRequests, Unauthorized
from ...core.lockout import is_locked, locked_message
from ...core.passwords import verify_password
from ...core.ratelimit import Slots
from ..context import Controller
from ..db.base import utcnow
from ..db.models import User


def refuse_if_locked(settings: Settings, user: User) -> None:
    """401 as Keystone's AccountLocked, checked before the password is hashed."""
    if is_locked(user.failed_auth_count or 0, user.failed_auth_at, utcnow(),
                 settings.lockout_failure_attempts, settings.lockout_duration):
        raise Unauthorized(locked_message(user.id))


def password_matches(ctl: Controller, slots: Slots, user: User | None, password: str) -> bool:
    """Verify a password as logins and password changes must: refused while the user is
    locked, in one of the bounded hashing slots, a failure counted."""
    if user is not None:
        refuse_if_locked(ctl.settings, user)
    with slots.held() as got:
        if not got:
            raise TooManyRequests("Too many password checks in progress; retry shortly.",
                                  headers={"Retry-After": "1"})
        matched = verify_password(user.password_hash if user else None, password)
    if not matched and user is not None:
        record_failure(ctl, user.id)
    return matched


def record_failure(ctl: Controller, user_id: str) -> None:
    """Count one failed password, in its own transaction (the request's rolls back)."""
    settings = ctl.settings
    if settings.lockout_failure_attempts <= 0:
        return
    now = utcnow()
    count = User.failed_auth_count
    if settings.lockout_duration > 0:
        # A lock that has run out starts a new count rather than re-locking at once.
        expired = and_(count >= settings.lockout_failure_attempts,
                       User.failed_auth_at < now - dt.timedelta(
                           seconds=settings.lockout_duration))
        count = case((expired, 1), else_=User.failed_auth_count + 1)
    with ctl.db.session() as session:
        session.execute(update(User).where(User.id == user_id)
                        .values(failed_auth_count=count, failed_auth_at=now))


def reset(session: Session, user: User) -> None:
    """Forget the failures after a successful login (no write when there were none)."""
    if user.failed_auth_count:
        session.execute(update(User).where(User.id == user.id, User.failed_auth_count > 0)
                        .values(failed_auth_count=0, failed_auth_at=None))


def unlock(session: Session, user: User) -> bool:
    """Clear a user's failures (the operator's unlock); whether any were counted."""
    had = bool(user.failed_auth_count)
    session.execute(update(User).where(User.id == user.id)
                    .values(failed_auth_count=0, failed_auth_at=None))
    return had
