"""Mapping a peer's users to local projects, and the brief trust in what a peer vouched."""

from __future__ import annotations

from atwill.core.scope_rules import (
    RemoteIdentity,
    Rule,
    TrustCache,
    matching,
    shadow_user_id,
)

DEFAULT = ("default", "Default")
ALICE = RemoteIdentity("u1", "alice", "p1", "research", DEFAULT, DEFAULT)
RULES = [Rule("research", "*", "local-any", "reader"),
         Rule("p1", "alice", "local-alice", "member"),
         Rule("other", "*", "local-other", "member")]


def test_a_users_own_rule_wins_over_the_projects_wildcard() -> None:
    assert matching(RULES, ALICE) == RULES[1]
    bob = RemoteIdentity("u2", "bob", "p1", "research", DEFAULT, DEFAULT)
    assert matching(RULES, bob) == RULES[0]


def test_no_rule_for_another_project() -> None:
    assert matching(RULES, RemoteIdentity("u1", "alice", "p9", "elsewhere")) is None
    assert matching([], ALICE) is None


def test_names_match_only_in_the_rules_domain() -> None:
    """Review finding: a same-named project or user of another domain at the peer was
    mapped as if it were the one the rule names."""
    other = ("d2", "Elsewhere")
    twin = RemoteIdentity("u7", "alice", "p7", "research", other, other)
    assert matching(RULES, twin) is None
    # The right project, but a same-named user of another domain: only the wildcard.
    visitor = RemoteIdentity("u7", "alice", "p1", "research", other, DEFAULT)
    assert matching(RULES, visitor) == RULES[0]
    # A peer that does not say the domains: names match nothing, ids still do.
    silent = RemoteIdentity("u1", "alice", "p1", "research")
    assert matching(RULES, silent) is None
    assert matching([Rule("p1", "u1", "l", "member")], silent) is not None
    elsewhere = [Rule("research", "alice", "l", "member", "Elsewhere", "d2")]
    assert matching(elsewhere, twin) == elsewhere[0]
    assert matching(elsewhere, ALICE) is None


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
