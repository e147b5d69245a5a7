"""Peers' view of a silent node, and the lease that makes an isolated node fence itself.

A node the controller no longer hears is either dead (its peers stopped hearing
it too) or partitioned from the controller only (its peers still hear it). A
node without a BMC is fenced by a lease: its agent kills its HA-protected VMs
once it has not renewed the lease (a heartbeat answered 200) for `lease`
seconds AND it hears fewer than half of the peers it probes. The controller may
count such a node as fenced only when it can prove that both hold on the node,
so the two rules below mirror each other:

- the agent counts a peer as heard only from answers to its own probes (proof
  that the peer received one of its probes), and
- peers report when they last had any sign of the node (an answer, or a probe
  from it), so their reports never make the node look more silent than it
  sees itself.

Thus when more than half of the node's probe set reports silence longer than
HEARD_WITHIN + margin, the node's agent has seen fewer than half of its peers
for at least `margin` seconds (less one-way delay), and has killed its VMs if
its lease also ran out.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence

DEAD, PARTITIONED, UNKNOWN = "dead", "partitioned", "unknown"
# UDP port of the agents' peer echo, on their overlay addresses.
PROBE_PORT = 51871
NEVER_HEARD_KEY = "peers_never_heard"  # heartbeat host figures: the probed peers never heard
# Peers each agent probes, at most (every node is probed by as many).
PROBES = 8
# A peer that answered within this many seconds is heard.
HEARD_WITHIN = 3.0


def probe_set(node_ids: Sequence[str], me: str, k: int = PROBES) -> list[str]:
    """The peers me probes: its ring neighbours in node_ids' sorted order.

    Symmetric (a probes b exactly when b probes a), so each node is probed by as
    many peers as it probes, and deterministic, so the controller knows the set.
    """
    ring = sorted(set(node_ids) | {me})
    others = len(ring) - 1
    if others <= k:
        return [n for n in ring if n != me]
    at, half = ring.index(me), max(k // 2, 1)
    chosen = {ring[(at + step) % len(ring)] for d in range(1, half + 1) for step in (d, -d)}
    chosen.discard(me)
    return sorted(chosen)


def ring_probes(ring: Sequence[str], me: str, k: int = PROBES) -> list[str]:
    """probe_set over a ring already sorted and without duplicates (every node with an
    overlay address, as ha/lease hands the peers out), in O(k log n): the controller asks
    it of every late node it judges by its peers' word, never of the node's own claim."""
    at = bisect_left(ring, me)
    if at == len(ring) or ring[at] != me or len(ring) - 1 <= k:
        return probe_set(ring, me, k)  # not in the ring, or a small fleet
    size, half = len(ring), max(k // 2, 1)
    return sorted({ring[(at + step) % size] for d in range(1, half + 1)
                   for step in (d, -d)} - {me})


def heard_count(ages: Iterable[float | None], within: float = HEARD_WITHIN) -> int:
    """How many peers answered within `within` seconds (None: never answered)."""
    return sum(1 for age in ages if age is not None and age < within)


def lease_expired(now: float, renewed_at: float | None, lease: float) -> bool:
    """Whether the lease, renewed (sent) at renewed_at on a monotonic clock, ran out."""
    return lease > 0 and (renewed_at is None or now - renewed_at >= lease)


def must_fence_self(now: float, renewed_at: float | None, lease: float,
                    answer_ages: Mapping[str, float | None]) -> bool:
    """The agent's rule: the lease ran out and fewer than half of its peers answer.

    A controller outage (peers still answer each other) kills nothing. A node with
    no peers never fences itself: it cannot tell isolation from an outage, and a
    lone node has nowhere to be evacuated to.
    """
    if not answer_ages or not lease_expired(now, renewed_at, lease):
        return False
    return heard_count(answer_ages.values()) * 2 < len(answer_ages)


def view(probed: Sequence[str], reports: Mapping[str, float], margin: float) -> str:
    """The controller's verdict on a silent node from its fresh peers' reports.

    probed: the peers the node said it probes (its last heartbeat); reports: fresh
    reporter id -> seconds since it last heard the node, as of now. DEAD when more
    than half of the probe set has not heard it for HEARD_WITHIN + margin (so its
    agent has seen fewer than half of them for at least margin); PARTITIONED when
    a fresh peer still hears it; else UNKNOWN (no proof either way).
    """
    members = set(probed)
    silent = sum(1 for peer, age in reports.items()
                 if peer in members and age >= HEARD_WITHIN + margin)
    if members and silent * 2 > len(members):
        return DEAD
    if any(age < HEARD_WITHIN for age in reports.values()):
        return PARTITIONED
    return UNKNOWN


def age_now(reported: float, report_age: float) -> float:
    """A reported silence, aged by the time since the report arrived (an underestimate:
    the report was measured before it was sent)."""
    return max(reported, 0.0) + max(report_age, 0.0)


def reported_ages(value: object) -> dict[str, float]:
    """A node's stored peer report (node id -> seconds since its last sign), only its
    well-formed entries: string keys, finite non-negative numbers. Read in the HA
    monitor's loop, a report of any other shape (a compromised or broken agent's) must
    never raise there: one would stop every node's judgement."""
    if not isinstance(value, dict):
        return {}
    out = {}
    for key, age in value.items():
        seconds = finite(age)
        if isinstance(key, str) and seconds is not None:
            # A sign a moment after the report was stamped reads a little negative: now.
            out[key] = max(seconds, 0.0)
    return out


def finite(value: object) -> float | None:
    """value as a finite float, or None: not a number (a boolean neither), NaN, an
    infinity, or an integer too large for a float (JSON keeps any integer)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def never_heard(value: object, most: int = 4 * PROBES) -> list[str]:
    """A node's stored list of probed peers it never heard: its string entries only,
    at most `most` (an agent probes PROBES)."""
    if not isinstance(value, list | tuple):
        return []
    return [peer for peer in value if isinstance(peer, str)][:most]

