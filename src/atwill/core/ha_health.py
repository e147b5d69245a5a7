"""A node's health from the age of its last heartbeat, and Nova's host_status.

A fixed threshold cannot both detect a powered-off LAN node in under 3 s and
stay quiet on a lossy, 300 ms link, where TCP retransmissions stretch a gap
between two heartbeats to 2-3 s. So each node's threshold grows with the
longest gap it showed recently (a peak that decays a little at every beat):
a LAN node keeps the floor, a node behind a poor link gets room for its own
worst recent gap times a margin.

A peak is learnt from gaps, so a link that turns bad at once is judged for its first
beats with its LAN threshold: the node's peers settle that (core/ha_confirm.vouched): past
its threshold, a node most of its peers still hear stays suspect until down_ceiling.

A fleet gone silent at once (mass_silence) is another matter: when a large share of a
large fleet is unheard together, the controller (saturated, just restarted, its own link
down) or the network between is more likely at fault than the nodes. atwill then judges
no node down (nor fences, nor evacuates) for at most MassSilence.max_hold seconds: a late
node stays suspect meanwhile; after it, nodes are judged as usual even if the silence
lasts (a real power-domain loss is then handled a minute late, never not at all). The
count is fleet-wide (not per availability zone) and takes only nodes that are up, or
were heard within MassSilence.recent seconds: a node long dead or never removed is in
neither the unheard count nor the fleet. A node counts as unheard past its own usual
silence (unheard_after: the suspect floor, or its own recent worst gap when longer).
Only fleets of at least `min_nodes` nodes: in a fleet of two or three, one silent node is
a large share and must still be fenced.

How it differs from Kubernetes' node lifecycle controller, whose thresholds it borrows
(--large-cluster-size-threshold 50, --unhealthy-zone-threshold 0.55): Kubernetes counts
per zone, and in an unhealthy zone of a cluster larger than 50 nodes it still evicts,
at a reduced rate (--secondary-node-eviction-rate 0.01 nodes/s); it stops evicting only
in a small cluster's unhealthy zone (or when every zone is down). atwill counts the whole
fleet, stops every verdict for a bounded time instead of slowing them, then resumes at
the full rate: HA evacuation is meant to take seconds, not 100 s per node.
"""

from __future__ import annotations

import dataclasses
import math

UP, SUSPECT, DOWN = "up", "suspect", "down"
# A node joined whose agent has not sent its first heartbeat yet is starting (fetching
# the CA, its overlay's first handshakes: seconds over a 400 ms lossy WAN), not silent:
# it is down only past this. It runs nothing yet, so waiting risks no double copy.
JOIN_GRACE = 30.0


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Seconds of silence before a node is suspect, then down (the floor)."""

    suspect_after: float = 1.6
    down_after: float = 2.6
    # The down threshold is at least peak_margin x the node's recent longest gap...
    peak_margin: float = 2.5
    # ...but never more than this, so that one stall long ago does not blind detection.
    down_ceiling: float = 10.0
    # Each heartbeat keeps this share of the previous peak (minutes of memory).
    peak_decay: float = 0.999


@dataclasses.dataclass(frozen=True)
class MassSilence:
    """From how many nodes, and from what share of them unheard, no node is judged down,
    and for how long at most (settings ha_mass_silence_nodes, ha_mass_silence_share,
    ha_mass_silence_max; nodes 0: never); nodes not up and unheard for longer than
    `recent` seconds are out of the count."""

    min_nodes: int = 50
    share: float = 0.55
    max_hold: float = 60.0
    recent: float = 300.0


# Below this many nodes the guard never holds (ha_mass_silence_nodes is 0 or at least
# this): a small cloud's HA (the lab fences one node of two or three) is never weakened.
MASS_SILENCE_FLOOR = 10
# The least share a setting may ask: below half, a few long-dead nodes and a small outage
# would silence HA for the whole fleet.
MASS_SILENCE_MIN_SHARE = 0.5


def mass_silence(fleet: int, unheard: int, m: MassSilence) -> bool:
    """Whether `unheard` of a fleet of `fleet` nodes (recently down ones included, as
    Kubernetes counts a zone's not-ready nodes: a cascade stops at the threshold) is a
    silence too wide to be the nodes'."""
    if m.min_nodes <= 0 or fleet < max(m.min_nodes, MASS_SILENCE_FLOOR):
        return False
    return unheard >= m.share * fleet - 1e-9  # 0.55 x 100 is 55.000...01 in floats


def silent_for(unheard_for: list[float], fleet: int, m: MassSilence) -> float | None:
    """Seconds since the share was reached, given how long each unheard node has been
    unheard; None when it is not reached now. Read from the rows alone (the k-th longest
    silence), so every worker and a restarted monitor agree on when a hold began."""
    if not mass_silence(fleet, len(unheard_for), m):
        return None
    needed = max(1, math.ceil(m.share * fleet - 1e-9))
    return max(0.0, sorted(unheard_for, reverse=True)[needed - 1])


def holds(unheard_for: list[float], fleet: int, m: MassSilence) -> bool:
    """Whether no node is judged down now: the share is reached, for under max_hold s."""
    since = silent_for(unheard_for, fleet, m)
    return since is not None and since < m.max_hold


def unheard_after(peak: float, t: Thresholds) -> float:
    """Silence past which a node counts as unheard for mass_silence: the suspect floor, or
    its own recent worst gap when longer (a node on a lossy link is often that late)."""
    return max(t.suspect_after, min(peak, down_threshold(peak, t)))


def next_peak(peak: float, gap: float | None, t: Thresholds) -> float:
    """The decayed peak gap after a heartbeat that came gap seconds after the last one."""
    decayed = peak * t.peak_decay
    if gap is None or gap < 0:
        return decayed
    # A gap past the node's down threshold was an outage (or the wait between a join and
    # the agent's start), not the link's jitter: learning it would blind detection.
    return max(decayed, gap) if gap <= down_threshold(peak, t) else decayed


def down_threshold(peak: float, t: Thresholds) -> float:
    """Silence after which this node is down, given its recent peak gap."""
    return min(max(t.down_after, peak * t.peak_margin), t.down_ceiling)


def classify(age: float, peak: float, t: Thresholds) -> str:
    """up, suspect or down for a node silent for age seconds."""
    limit = down_threshold(peak, t)
    if age > limit:
        return DOWN
    if age > min(t.suspect_after, limit):
        return SUSPECT
    return UP


def host_status(forced_down: bool, enabled: bool, alive: bool, fenced: bool) -> str:
    """Nova's host_status (2.16): forced down is DOWN, disabled is MAINTENANCE, a host
    that does not report is UNKNOWN. A node known powered off (fenced) is DOWN too:
    unlike a silent one, it is known not to run anything."""
    if forced_down or fenced:
        return "DOWN"
    if not enabled:
        return "MAINTENANCE"
    return "UP" if alive else "UNKNOWN"


def ha_enabled(metadata: dict[str, str] | None) -> bool:
    """Masakari's convention, as an opt-out: HA_Enabled=False (any case) excludes it."""
    value = (metadata or {}).get("HA_Enabled")
    return value is None or str(value).strip().lower() not in ("false", "0", "no", "off")
