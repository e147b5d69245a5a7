"""Peer identities: the mapping rules a local admin writes, and the brief trust cache.

A peer's user is known by what the peer vouches for (user and project, by id, and by
name within their domains); a rule maps a peer project and one user of it (or '*', any)
to a local project and role, Keystone-federation-like. A rule naming the user wins over
'*'. A name means something only in its domain: a rule matches a name only in the
domain it names (by id or name), so a same-named project or user of another domain at
the peer is not mapped (review finding).
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

ANY = "*"
MAX_CACHE_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class RemoteIdentity:
    """Who a peer says a token belongs to."""

    user_id: str
    user_name: str
    project_id: str
    project_name: str
    # (id, name) of each one's domain; empty when the peer did not say (names then match
    # nothing, ids still do).
    user_domain: tuple[str, str] = ("", "")
    project_domain: tuple[str, str] = ("", "")


@dataclasses.dataclass(frozen=True)
class Rule:
    remote_project: str
    remote_user: str
    local_project_id: str
    role: str
    # The domain (id or name, at the peer) the rule's project and user names are in.
    project_domain: str = "Default"
    user_domain: str = "Default"


def names(value: str, domain: str, own_id: str, own_name: str,
          own_domain: tuple[str, str]) -> bool:
    """value names this project or user: its id, or its name in the rule's domain."""
    if value == own_id:
        return True
    return bool(domain) and value == own_name and domain in own_domain


def matching(rules: Iterable[Rule], who: RemoteIdentity) -> Rule | None:
    """The rule that applies to who: the user's own rule first, then the project's '*'."""
    in_project = [r for r in rules if names(r.remote_project, r.project_domain,
                                            who.project_id, who.project_name,
                                            who.project_domain)]
    for rule in in_project:
        if names(rule.remote_user, rule.user_domain, who.user_id, who.user_name,
                 who.user_domain):
            return rule
    return next((r for r in in_project if r.remote_user == ANY), None)


def shadow_user_id(peer_id: str, remote_user_id: str) -> str:
    """A stable local id (32 hex, Keystone's shape) for a peer's user; never a real user."""
    return hashlib.sha256(f"{peer_id}/{remote_user_id}".encode()).hexdigest()[:32]


class TrustCache:
    """What a peer said about a token, kept at most ttl seconds (capped at 30 s), so a
    token revoked at its home cloud stops working here within that time."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic,
                 size: int = 10_000) -> None:
        self.ttl = max(0.0, min(ttl, MAX_CACHE_SECONDS))
        self.clock, self.size = clock, size
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, peer: str, token: str) -> Any | None:
        with self._lock:
            entry = self._entries.get((peer, token))
            if entry is None:
                return None
            if self.clock() - entry[0] >= self.ttl:
                del self._entries[(peer, token)]
                return None
            return entry[1]

    def put(self, peer: str, token: str, value: Any) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))
            self._entries[(peer, token)] = (self.clock(), value)

    def forget(self, peer: str) -> None:
        """Drop what a peer vouched for (the peer was removed or its mappings changed)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == peer]:
                del self._entries[key]
