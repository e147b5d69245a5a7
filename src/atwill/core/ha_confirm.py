"""Peers confirm a silent node down before its own heartbeat threshold runs out.

A node's down threshold grows with its recent longest heartbeat gap
(core/ha_health), so that a lossy link does not make it flap. But a gap can also
grow on a healthy LAN node that was busy (ten VM boots on two cores), and then
a powered-off node was seen down only after 3-4 s. The node's peers settle it:
they probe it over the overlay every second, and report in each heartbeat how
long ago they last had any sign of it. A node whose heartbeat is late (past
suspect_after) and of which most of its probe set has had no sign for `confirm`
seconds is down now, whatever its grown threshold.

The other way round (vouched): a node past its own threshold of which most of its
probe set had a sign within VOUCH_WITHIN seconds is alive on the overlay; only its
link to the controller loses or delays heartbeats. It stays suspect until its silence
passes the ceiling (core/ha_health.Thresholds.down_ceiling). The case (CI, the lab's
flapping-link test): node1's link turned lossy at once (300 ms round trips, 5 % loss)
while its learned peak gap was still the LAN's (~1.05 s: a 2.6-2.75 s threshold, 3.0-
3.15 s of real silence with the workers' 0.4 s grace), and one heartbeat came later than
that: node1 was judged down and its fencing tried. Its TCP connection's retransmissions
(5 % loss each way, 300 ms round trips) make such gaps. Seven lab runs (2026-12-07, idle
machine, with this rule): node1's slowest answered heartbeat per run 2.2-3.1 s apart
(3.13 s once), late ones spread over the 40 s; the link change itself (the lab's userspace
WAN emulator starting: this kernel has no netem) took 0.16-0.22 s. At the edge of the LAN
threshold: the CI run, on a loaded machine, went past it; none of the seven did (no hold).
A dead node is not held: its peers' signs stop with it, and their reports, aged by the
time since they arrived, pass VOUCH_WITHIN at most that long after its death (and the
confirm rule above, which takes precedence, usually judges it first).

To confirm, only what a peer reported counts (not aged since its report): a
sign that reached the peer after its report would make an aged value overstate
the silence, and a link that only drops packets keeps signs flowing to most
peers. A peer counts only while its own heartbeats are fresh.

Both rules count against the probe set the controller handed the node (peer_view.probe_set
over every node with an overlay address: ha/lease.desired_block), never the set the node
says it probes: a node reporting one friendly peer (a compromised agent, or an older one
reporting part of its set) would have that one peer keep it suspect to the ceiling, or
confirm it down alone. A node claiming more peers than it has only slowed its own
confirmation; its claim no longer moves either rule. Its peers report it whatever it
claims: they probe it because their own sets, symmetric, name it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# A reporter whose last heartbeat is older than this is not fresh: its word is stale.
FRESH_WITHIN = 2.0
# A peer that had a sign of the node within this many seconds (its report aged by the time
# since it arrived) vouches for it: core/peer_view.HEARD_WITHIN, the agent's own notion of
# a peer heard. On the lab's lossy link (5 %, 300 ms round trips) a peer has a sign of the
# node every ~0.5 s (its probes and their answers) and reports every ~1 s: under 2.5 s.
VOUCH_WITHIN = 3.0
# Vouchers needed at least, once the probe set has as many (implied by the majority from 3
# members on; stated so that no smaller set is ever read as the node's whole set).
MIN_VOUCHERS = 2


def confirmed_down(silence: float, suspect_after: float, confirm: float,
                   probed: Sequence[str], reports: Mapping[str, float]) -> bool:
    """Whether the node, silent for `silence` seconds, is down on its peers' word.

    probed: the peers the controller expects the node to probe (peer_view.probe_set
    over the fleet's ring, not the node's own claim); reports: fresh reporter id -> the
    silence it reported about the node. More than half of the probe set must
    report at least `confirm` seconds (0 turns the rule off).
    """
    if confirm <= 0 or silence <= suspect_after:
        return False
    members = set(probed)
    silent = sum(1 for peer, age in reports.items() if peer in members and age >= confirm)
    return bool(members) and silent * 2 > len(members)


def vouched(silence: float, ceiling: float, confirm: float, probed: Sequence[str],
            aged: Mapping[str, float], within: float = VOUCH_WITHIN) -> bool:
    """Whether the node, silent for `silence` seconds on the controller's clock, is held
    alive by its peers' word: more than half of its probe set had a sign of it within
    `within` seconds (and at least MIN_VOUCHERS of them once the set has that many), and
    the silence is not past `ceiling`.

    probed: the peers the controller expects the node to probe (peer_view.probe_set over
    the fleet's ring), never the node's own claim: one friendly peer is not a majority.

    aged: fresh reporter id -> the silence it reported about the node, aged by the time
    since its report arrived (peer_view.age_now). confirm <= 0 turns the peers' word off
    (heartbeats alone), as for confirmed_down.
    """
    if confirm <= 0 or silence > ceiling:
        return False
    members = set(probed)
    heard = sum(1 for peer, age in aged.items() if peer in members and age < within)
    return bool(members) and heard * 2 > len(members) and \
        heard >= min(MIN_VOUCHERS, len(members))
