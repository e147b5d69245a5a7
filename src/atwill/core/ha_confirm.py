"""Peers confirm a silent node down before its own heartbeat threshold runs out.

A node's down threshold grows with its recent longest heartbeat gap
(core/ha_health), so that a lossy link does not make it flap. But a gap can also
grow on a healthy LAN node that was busy (ten VM boots on two cores), and then
a powered-off node was seen down only after 3-4 s. The node's peers settle it:
they probe it over the overlay every second, and report in each heartbeat how
long ago they last had any sign of it. A node whose heartbeat is late (past
suspect_after) and of which most of its probe set has had no sign for `confirm`
seconds is down now, whatever its grown threshold.

Only what a peer reported counts (not aged by the time since its report): a
sign that reached the peer after its report would make an aged value overstate
the silence, and a link that only drops packets keeps signs flowing to most
peers. A peer counts only while its own heartbeats are fresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# A reporter whose last heartbeat is older than this is not fresh: its word is stale.
FRESH_WITHIN = 2.0


def confirmed_down(silence: float, suspect_after: float, confirm: float,
                   probed: Sequence[str], reports: Mapping[str, float]) -> bool:
    """Whether the node, silent for `silence` seconds, is down on its peers' word.

    probed: the peers the node said it probes; reports: fresh reporter id -> the
    silence it reported about the node. More than half of the probe set must
    report at least `confirm` seconds (0 turns the rule off).
    """
    if confirm <= 0 or silence <= suspect_after:
        return False
    members = set(probed)
    silent = sum(1 for peer, age in reports.items() if peer in members and age >= confirm)
    return bool(members) and silent * 2 > len(members)
