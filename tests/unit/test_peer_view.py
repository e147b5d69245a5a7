"""core/peer_view: probe sets, the agent's lease rule and the controller's verdict."""

from __future__ import annotations

import itertools

import pytest

from atwill.core import peer_view
from atwill.core.peer_view import DEAD, HEARD_WITHIN, PARTITIONED, UNKNOWN


def test_small_clusters_probe_everyone_else() -> None:
    assert peer_view.probe_set(["c", "a", "b"], "b") == ["a", "c"]
    assert peer_view.probe_set([], "a") == []
    assert peer_view.probe_set(["a"], "a") == []


@pytest.mark.parametrize("size,k", [(9, 8), (20, 8), (21, 5), (50, 4)])
def test_large_clusters_probe_k_ring_neighbours_symmetrically(size: int, k: int) -> None:
    nodes = [f"n{i:02d}" for i in range(size)]
    sets = {n: peer_view.probe_set(nodes, n, k) for n in nodes}
    for node, peers in sets.items():
        assert node not in peers
        assert len(peers) == min(size - 1, 2 * (k // 2))
        for peer in peers:
            assert node in sets[peer]  # a probes b exactly when b probes a
    probed_by = {n: sum(n in s for s in sets.values()) for n in nodes}
    assert set(probed_by.values()) == {2 * (k // 2)}
    # Deterministic whatever the order the nodes were listed in.
    assert sets["n03"] == peer_view.probe_set(list(reversed(nodes)), "n03", k)


def test_lease_runs_out_only_after_lease_seconds_and_zero_turns_it_off() -> None:
    assert not peer_view.lease_expired(105.9, 100.0, 6.0)
    assert peer_view.lease_expired(106.0, 100.0, 6.0)
    assert peer_view.lease_expired(0.0, None, 6.0)  # never renewed
    assert not peer_view.lease_expired(1e9, 100.0, 0.0)


def test_agent_fences_itself_when_isolated_not_in_a_controller_outage() -> None:
    isolated = {"p1": None, "p2": 7.0, "p3": 4.0, "p4": 0.5}
    outage = {"p1": 0.5, "p2": 0.9, "p3": 9.0, "p4": 9.0}  # half still answer
    assert peer_view.must_fence_self(110.0, 100.0, 6.0, isolated)
    assert not peer_view.must_fence_self(110.0, 100.0, 6.0, outage)
    assert not peer_view.must_fence_self(105.0, 100.0, 6.0, isolated)  # lease still valid
    assert not peer_view.must_fence_self(110.0, 100.0, 0.0, isolated)  # self-fencing off
    assert not peer_view.must_fence_self(110.0, 100.0, 6.0, {})  # lone node


def test_controller_verdicts() -> None:
    probed = ["p1", "p2", "p3"]
    late = HEARD_WITHIN + 2.0
    assert peer_view.view(probed, {"p1": late, "p2": late + 1}, 2.0) == DEAD
    assert peer_view.view(probed, {"p1": late, "p2": 0.4}, 2.0) == PARTITIONED
    # Silent, but not for long enough to prove the agent saw it: no verdict yet.
    assert peer_view.view(probed, {"p1": late - 0.1, "p2": late}, 2.0) == UNKNOWN
    # Half the set is no proof (the node may hear the other half); no reports neither.
    assert peer_view.view(["p1", "p2"], {"p1": late}, 2.0) == UNKNOWN
    assert peer_view.view(probed, {}, 2.0) == UNKNOWN
    assert peer_view.view([], {"x": 0.1}, 2.0) == PARTITIONED
    # Reporters outside the node's probe set do not count towards its silence.
    assert peer_view.view(["p1"], {"x": late, "y": late}, 2.0) == UNKNOWN
    assert peer_view.age_now(1.5, 2.0) == 3.5
    assert peer_view.age_now(-3.0, -1.0) == 0.0


def test_a_dead_verdict_implies_the_agent_fenced_itself() -> None:
    """Over every report pattern: when the controller says DEAD, the node's own rule,
    with answers no fresher than its peers' signs of it, says fence."""
    probed = ["p1", "p2", "p3", "p4", "p5"]
    margin = 2.0
    for ages in itertools.product([0.5, HEARD_WITHIN, HEARD_WITHIN + margin, None], repeat=5):
        reports = {p: a for p, a in zip(probed, ages, strict=True) if a is not None}
        if peer_view.view(probed, reports, margin) != DEAD:
            continue
        # The node heard each peer no later than that peer heard it; unreported ones
        # may have answered just now.
        answers = {p: reports.get(p, 0.0) - 0.1 for p in probed}
        assert peer_view.must_fence_self(200.0, 100.0, 6.0, answers), reports
