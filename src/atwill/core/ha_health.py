"""A node's health from the age of its last heartbeat, and Nova's host_status.

A fixed threshold cannot both detect a powered-off LAN node in under 3 s and
stay quiet on a lossy, 300 ms link, where TCP retransmissions stretch a gap
between two heartbeats to 2-3 s. So each node's threshold grows with the
longest gap it showed recently (a peak that decays a little at every beat):
a LAN node keeps the floor, a node behind a poor link gets room for its own
worst recent gap times a margin.

A fleet gone silent at once (mass_silence) is another matter: when a large share of a
large fleet is unheard together, the controller (saturated, just restarted, its own link
down) or the network between is far more likely at fault than the nodes, as Kubernetes'
node lifecycle controller reasons (--large-cluster-size-threshold 50,
--unhealthy-zone-threshold 0.55: it then stops evicting). Here the monitor then judges no
node down (nor fences, nor evacuates): a late node stays suspect until the share falls
back below the threshold. Only fleets of at least `min_nodes` nodes: in a fleet of two or
three, one silent node is a large share and must still be fenced.
"""

from __future__ import annotations

import dataclasses

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
    """From how many nodes, and from what share of them unheard, no node is judged down
    (settings ha_mass_silence_nodes and ha_mass_silence_share; nodes 0: never)."""

    min_nodes: int = 50
    share: float = 0.55


# Below this many nodes the guard never holds, whatever the setting says: a small cloud's
# HA (the lab fences one node of two or three) is never weakened by it.
MASS_SILENCE_FLOOR = 10


def mass_silence(fleet: int, unheard: int, m: MassSilence) -> bool:
    """Whether `unheard` of a fleet of `fleet` nodes (already down ones included, as
    Kubernetes counts a zone's not-ready nodes: a cascade stops at the threshold) is a
    silence too wide to be the nodes'."""
    if m.min_nodes <= 0 or fleet < max(m.min_nodes, MASS_SILENCE_FLOOR):
        return False
    return unheard >= m.share * fleet - 1e-9  # 0.55 x 100 is 55.000...01 in floats


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
