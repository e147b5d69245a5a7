"""Mapping a peer's users to local projects, and the brief trust in what a peer vouched."""

from __future__ import annotations

from atwill.core.scope_rules import (
    RemoteIdentity,
    Rule,
    TrustCache,
    matching,
    shadow_user_id,
)

ALICE = RemoteIdentity("u1", "alice", "p1", "research")
RULES = [Rule("research", "*", "local-any", "reader"),
         Rule("p1", "alice", "local-alice", "member"),
         Rule("other", "*", "local-other", "member")]


def test_a_users_own_rule_wins_over_the_projects_wildcard() -> None:
    assert matching(RULES, ALICE) == RULES[1]
    bob = RemoteIdentity("u2", "bob", "p1", "research")
    assert matching(RULES, bob) == RULES[0]


def test_no_rule_for_another_project() -> None:
    assert matching(RULES, RemoteIdentity("u1", "alice", "p9", "elsewhere")) is None
    assert matching([], ALICE) is None


def test_shadow_ids_are_stable_and_per_peer() -> None:
    first = shadow_user_id("peer-a", "u1")
    assert first == shadow_user_id("peer-a", "u1") and len(first) == 32
    assert first != shadow_user_id("peer-b", "u1")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_trust_expires_after_ttl_and_is_capped_at_30_s() -> None:
    clock = Clock()
    cache = TrustCache(ttl=3600, clock=clock)
    assert cache.ttl == 30
    cache.put("peer", "tok", ALICE)
    clock.now += 29.9
    assert cache.get("peer", "tok") == ALICE
    clock.now += 0.2
    assert cache.get("peer", "tok") is None


def test_zero_ttl_caches_nothing_and_forget_drops_a_peer() -> None:
    assert TrustCache(ttl=0).put("p", "t", ALICE) is None
    nothing = TrustCache(ttl=0)
    nothing.put("p", "t", ALICE)
    assert nothing.get("p", "t") is None
    cache = TrustCache(ttl=10)
    cache.put("a", "t", ALICE)
    cache.put("b", "t", ALICE)
    cache.forget("a")
    assert cache.get("a", "t") is None and cache.get("b", "t") == ALICE


def test_the_cache_is_bounded() -> None:
    cache = TrustCache(ttl=10, size=2)
    for token in ("t1", "t2", "t3"):
        cache.put("p", token, ALICE)
    assert cache.get("p", "t1") is None and cache.get("p", "t3") == ALICE
