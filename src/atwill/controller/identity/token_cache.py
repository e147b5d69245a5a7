"""Recently validated tokens, so a request need not re-read identity from the database.

An entry holds what a request needs (who calls, on what, with which roles; or the
token body a service asks for when it validates a user's token) and lives at most
TTL seconds. Any committed change to identity in this process (a revocation, a role
assignment, a user, project or domain disabled or deleted, a password changed) drops
every entry at once, and so does any change of the token keys (`atwill keys rotate`,
run by another process, can retire the key a cached token was made with).

The controller's other worker processes hear of such a change through a file in the
state directory (worker_stamp), touched after the commit and stat'ed by follow() at
every authenticated request: a request that reaches another worker after the change
was answered never gets a cached entry from before it. A change made by a controller
on another machine sharing the database is seen within TTL, like Keystone's own token
cache.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
import weakref
from collections import OrderedDict
from itertools import chain
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from ..db.identity import SystemRoleAssignment
from ..db.models import (
    Domain,
    Endpoint,
    ImpliedRole,
    Project,
    Region,
    Revocation,
    Role,
    RoleAssignment,
    Service,
    User,
)
from ..worker_stamp import Stamp, WorkerStamp

TTL = 3.0
MAX_ENTRIES = 10_000
# What a validation or a token body reads: a commit touching any of it drops the cache.
IDENTITY = (User, Project, Domain, Role, RoleAssignment, ImpliedRole, Revocation, Service,
            Endpoint, Region, SystemRoleAssignment)
MARK = "atwill.identity_changed"


@dataclasses.dataclass(frozen=True)
class Entry:
    value: Any  # never mutated once cached
    expires_at: dt.datetime  # the token's own expiry (naive UTC)
    cached_at: float  # monotonic


class TokenCache:
    def __init__(self, ttl: float = TTL, size: int = MAX_ENTRIES) -> None:
        self.ttl, self.size = ttl, size
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._keys_stamp: object = None
        self._shared: WorkerStamp | None = None
        self._shared_stamp: Stamp = None
        self._lock = threading.Lock()
        _caches.add(self)

    def share(self, path: Path | None) -> None:
        """Tell other workers of identity changes through `path`, and follow theirs."""
        with self._lock:
            self._shared = WorkerStamp(path) if path is not None else None
            self._shared_stamp = self._shared.read() if self._shared else None

    def follow(self, keys_stamp: object) -> None:
        """Forget everything when the token keys changed (a rotation can retire a key) or
        another worker changed identity."""
        shared = self._shared.read() if self._shared is not None else None
        with self._lock:
            if keys_stamp != self._keys_stamp or shared != self._shared_stamp:
                self._entries.clear()
                self._keys_stamp, self._shared_stamp = keys_stamp, shared
                # A validation under way here may have read identity before that change:
                # its put() must be refused, as after a change made in this process.
                _generation[0] += 1

    def get(self, key: str) -> Any | None:
        """What was kept under key (a token, or a token with a qualifier), if still good."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            if time.monotonic() - entry.cached_at > self.ttl or entry.expires_at <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry.value

    def put(self, key: str, value: Any, expires_at: dt.datetime, generation: int) -> None:
        """Keep value until the token expires or TTL passes, unless identity changed
        since `generation` was read (then the value may be stale already)."""
        with self._lock:
            if generation != _generation[0]:
                return
            self._entries[key] = Entry(value, expires_at, time.monotonic())
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def changed(self) -> None:
        """Identity changed here: forget, and tell the other workers. (The next follow()
        here forgets again: an entry put meanwhile may predate another worker's change
        told in the same file.)"""
        if self._shared is not None:
            self._shared.touch()
        self.clear()


_caches: weakref.WeakSet[TokenCache] = weakref.WeakSet()
# Bumped at every identity commit: a validation read before it must not be cached after.
_generation = [0]


def generation() -> int:
    """Read before validating; pass to put()."""
    return _generation[0]


def identity_changed() -> None:
    _generation[0] += 1
    for cache in list(_caches):
        cache.changed()


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
