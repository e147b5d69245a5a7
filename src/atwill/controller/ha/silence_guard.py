"""The HA monitor's guard against a fleet-wide silence (core/ha_health.mass_silence).

When a large share of a large fleet is unheard at once (the controller just restarted
and its first beats queue, it is saturated, its own link is down), the monitor judges no
node down for at most ha_mass_silence_max seconds (60 by default): no verdict, no
fencing, no evacuation, no cascade of nodes marked down whose beats then take the full
path and slow the controller further. After it, nodes are judged as usual even if the
silence lasts (a power domain really lost is handled a minute late, not never). The count
is fleet-wide (nodes carry no availability zone of their own) and leaves out nodes not
up that nobody heard for ha_health.MassSilence.recent seconds (long dead, never removed).

Exempt from a hold: a node the operator forced down or confirmed off (`fence confirm`),
and one fenced: the operator's word or a fence is not a silence to doubt.

When the hold began is read from the rows (the k-th longest silence, ha_health.silent_for),
not from this process: a restarted monitor or any worker's /metrics agree on it (silence
counted from the monitor's `since`: a restarted controller restarts the clock). A warning
is logged when the hold starts (saying until when), when it ends because it lasted
ha_mass_silence_max, and when fewer are unheard again; /metrics shows it
(atwill_ha_mass_silence) and its figures, read from the node rows at each scrape.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from ...core import ha_health, restart_notice
from ..cluster import liveness
from ..context import Controller
from ..db.models import Node

log = logging.getLogger("atwill.ha")
# In the process that runs the monitor: "" (judging as usual), "held" (no verdict) or
# "over" (the share is still reached but the hold lasted ha_mass_silence_max).
_state = ""
# The monitor's last `since` in this process; another worker counts from its own start.
_STARTED = dt.datetime.now(dt.UTC).replace(tzinfo=None)
_since: dt.datetime | None = None


def limits(ctl: Controller) -> ha_health.MassSilence:
    s = ctl.settings
    return ha_health.MassSilence(min_nodes=s.ha_mass_silence_nodes,
                                 share=s.ha_mass_silence_share,
                                 max_hold=s.ha_mass_silence_max)


def exempt(node: Node) -> bool:
    """The operator forced it down or confirmed it off, or it was fenced: judged as usual."""
    return bool(node.forced_down) or (node.fenced_at is not None and node.fence_state == "ok")


def count(nodes: Iterable[Node], silences: dict[str, float], t: ha_health.Thresholds,
          m: ha_health.MassSilence, now: dt.datetime) -> tuple[int, list[float]]:
    """(fleet, how long each unheard node has been unheard). The fleet: nodes up, and
    nodes not up heard within m.recent s. Unheard: those not up, and those up and silent
    past their own ha_health.unheard_after (a node under a restart notice that still
    holds was heard of)."""
    fleet, unheard_for = 0, []
    for node in nodes:
        silence = silences.get(node.id, 0.0)
        over = silence - ha_health.unheard_after(node.heartbeat_gap_peak or 0.0, t)
        if node.state != "up":
            if node.last_heartbeat is None or \
                    (now - node.last_heartbeat).total_seconds() > m.recent:
                continue  # long dead (or never removed): not part of the fleet now
            fleet += 1
            unheard_for.append(max(0.0, over))
            continue
        fleet += 1
        if over > 0 and not (not node.forced_down
                             and restart_notice.holds(node.host_status, now)):
            unheard_for.append(over)
    return fleet, unheard_for


def hold(ctl: Controller, nodes: Sequence[Any], silences: dict[str, float],
         thresholds: ha_health.Thresholds, now: dt.datetime,
         since: dt.datetime | None = None) -> bool:
    """Whether this pass judges no node down (but the exempt ones); the warning on each
    change."""
    global _state, _since  # noqa: PLW0603 - one monitor per process
    _since = since if since is not None else _since
    m = limits(ctl)
    fleet, unheard_for = count(nodes, silences, thresholds, m, now)
    lasted = ha_health.silent_for(unheard_for, fleet, m)
    state = "" if lasted is None else "held" if lasted < m.max_hold else "over"
    unheard = len(unheard_for)
    if state == "held" and _state != "held":
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=m.max_hold - lasted)
        log.warning("%d of %d nodes unheard at once (at least %.0f %% of a fleet of %d or "
                    "more, ha_mass_silence_share): the controller or its network is more "
                    "likely at fault than the nodes; no node is judged down, fenced or "
                    "evacuated (but those forced down or confirmed off) until fewer are "
                    "unheard or for %.0f s at most, until %s UTC (ha_mass_silence_max); "
                    "then nodes are judged as usual", unheard, fleet, 100 * m.share,
                    max(m.min_nodes, ha_health.MASS_SILENCE_FLOOR), m.max_hold,
                    until.strftime("%H:%M:%S"))
    elif state == "over" and _state != "over":
        log.warning("%d of %d nodes still unheard after %.0f s (ha_mass_silence_max): the "
                    "mass-silence hold ends; silent nodes are judged down, fenced and "
                    "evacuated as usual", unheard, fleet, lasted)
    elif state == "" and _state:
        _below(unheard, fleet)
    _state = state
    return state == "held"


def clear(since: dt.datetime | None = None) -> None:
    """Every node heard (the monitor's shortcut skipped the count): no hold."""
    global _state, _since  # noqa: PLW0603 - one monitor per process
    _since = since if since is not None else _since
    if _state:
        _below(0, None)
    _state = ""


def _below(unheard: int, fleet: int | None) -> None:
    of = f"{unheard} of {fleet} nodes unheard" if fleet is not None else "every node heard"
    log.warning("%s: below the mass-silence share again; nodes are judged as usual", of)


def families(ctl: Controller, nodes: Iterable[Node], now: dt.datetime | None = None
             ) -> Iterator[Metric]:
    """/metrics: the hold as the monitor would see it now (the same grace for buffered
    beats, silence counted from the monitor's `since` in its process, from this
    process's start in another worker), and its figures."""
    now = (now or dt.datetime.now(dt.UTC).replace(tzinfo=None)) - dt.timedelta(
        seconds=liveness.staleness())
    since = _since or _STARTED
    heard = [n for n in nodes if n.last_heartbeat is not None]
    silences = {n.id: (now - max(n.last_heartbeat, since)).total_seconds() for n in heard}
    s, m = ctl.settings, limits(ctl)
    t = ha_health.Thresholds(suspect_after=s.ha_suspect_after, down_after=s.ha_down_after)
    fleet, unheard_for = count(heard, silences, t, m, now)
    lasted = ha_health.silent_for(unheard_for, fleet, m)
    held = GaugeMetricFamily(
        "atwill_ha_mass_silence", "1 while so large a share of the fleet is unheard that "
        "the HA monitor judges no node down (ha_mass_silence_nodes, _share; for "
        "ha_mass_silence_max s at most).")
    held.add_metric([], 1 if lasted is not None and lasted < m.max_hold else 0)
    seconds = GaugeMetricFamily(
        "atwill_ha_mass_silence_seconds", "How long the mass-silence share has been "
        "reached (0: not reached); past ha_mass_silence_max nodes are judged again.")
    seconds.add_metric([], lasted or 0.0)
    unheard = GaugeMetricFamily("atwill_ha_unheard_nodes", "Nodes recently down, or up "
                                "and silent past their usual silence.")
    unheard.add_metric([], len(unheard_for))
    counted = GaugeMetricFamily("atwill_ha_counted_nodes", "The fleet the mass-silence "
                                "share is of: nodes up, or down but heard recently.")
    counted.add_metric([], fleet)
    yield from (held, seconds, unheard, counted)
