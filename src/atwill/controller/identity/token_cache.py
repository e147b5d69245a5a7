"""Recently validated tokens, so a request need not re-read identity from the database.

An entry holds only what a request needs (who calls, on what, with which roles) and
lives at most TTL seconds. Any committed change to identity in this process — a
revocation, a role assignment, a user, project or domain disabled or deleted — drops
every entry at once. A change made by another controller process sharing the
database is seen within TTL, like Keystone's own token cache.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
import weakref
from collections import OrderedDict
from itertools import chain

from sqlalchemy import event
from sqlalchemy.orm import Session

from ...core.policy import Credentials
from ..db.models import Domain, ImpliedRole, Project, Revocation, Role, RoleAssignment, User

TTL = 3.0
MAX_ENTRIES = 10_000
IDENTITY = (User, Project, Domain, Role, RoleAssignment, ImpliedRole, Revocation)
MARK = "atwill.identity_changed"


@dataclasses.dataclass(frozen=True)
class Entry:
    credentials: Credentials
    user_id: str
    project_id: str | None
    expires_at: dt.datetime  # the token's own expiry (naive UTC)
    cached_at: float  # monotonic


class TokenCache:
    def __init__(self, ttl: float = TTL, size: int = MAX_ENTRIES) -> None:
        self.ttl, self.size = ttl, size
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()
        _caches.add(self)

    def get(self, token: str) -> Entry | None:
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            if time.monotonic() - entry.cached_at > self.ttl or entry.expires_at <= now:
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
            return entry

    def put(self, token: str, credentials: Credentials, user_id: str, project_id: str | None,
            expires_at: dt.datetime, generation: int) -> None:
        """Keep a validation, unless identity changed since `generation` was read."""
        with self._lock:
            if generation != _generation[0]:
                return
            self._entries[token] = Entry(credentials, user_id, project_id, expires_at,
                                         time.monotonic())
            self._entries.move_to_end(token)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_caches: weakref.WeakSet[TokenCache] = weakref.WeakSet()
# Bumped at every identity commit: a validation read before it must not be cached after.
_generation = [0]


def generation() -> int:
    """Read before validating; pass to put()."""
    return _generation[0]


def identity_changed() -> None:
    _generation[0] += 1
    for cache in list(_caches):
        cache.clear()


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _context: object) -> None:
    if any(isinstance(obj, IDENTITY)
           for obj in chain(session.new, session.dirty, session.deleted)):
        session.info[MARK] = True


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.info.pop(MARK, False):
        identity_changed()


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(MARK, None)
