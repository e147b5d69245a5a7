"""The HA monitor's guard against a fleet-wide silence (core/ha_health.mass_silence).

When a large share of a large fleet is unheard at once (the controller just restarted
and its first beats queue, it is saturated, its own link is down), the monitor judges no
node down for as long as it lasts: no verdict, no fencing, no evacuation, no cascade of
nodes marked down whose beats then take the full path and slow the controller further.
A warning is logged when the hold starts and when it ends; /metrics shows the hold
(atwill_ha_mass_silence) and its figures, read from the node rows at each scrape, so any
worker answers them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from ...core import ha_health, restart_notice
from ..context import Controller
from ..db.models import Node

log = logging.getLogger("atwill.ha")
_held = False  # in the process that runs the monitor: whether its last pass held


def limits(ctl: Controller) -> ha_health.MassSilence:
    s = ctl.settings
    return ha_health.MassSilence(min_nodes=s.ha_mass_silence_nodes,
                                 share=s.ha_mass_silence_share)


def count(nodes: Iterable[Node], silences: dict[str, float], suspect_after: float,
          now: dt.datetime) -> tuple[int, int]:
    """(fleet, unheard): every node with a heartbeat; those not up, or up and silent past
    suspect_after (a node under a restart notice that still holds was heard of)."""
    fleet = unheard = 0
    for node in nodes:
        fleet += 1
        if node.state != "up":
            unheard += 1
        elif silences.get(node.id, 0.0) > suspect_after and not (
                not node.forced_down and restart_notice.holds(node.host_status, now)):
            unheard += 1
    return fleet, unheard


def hold(ctl: Controller, nodes: list[Node], silences: dict[str, float],
         thresholds: ha_health.Thresholds, now: dt.datetime) -> bool:
    """Whether this pass judges no node down; the warning on each change."""
    global _held  # noqa: PLW0603 - one monitor per process
    fleet, unheard = count(nodes, silences, thresholds.suspect_after, now)
    m = limits(ctl)
    held = ha_health.mass_silence(fleet, unheard, m)
    if held and not _held:
        log.warning("%d of %d nodes unheard at once (at least %.0f %% of a fleet of %d or "
                    "more): the controller or its network is more likely at fault than "
                    "the nodes; no node is judged down, fenced or evacuated until fewer "
                    "are unheard (ha_mass_silence_share)", unheard, fleet, 100 * m.share,
                    m.min_nodes)
    elif _held and not held:
        log.warning("%d of %d nodes unheard: below the mass-silence share again; nodes "
                    "are judged as usual", unheard, fleet)
    _held = held
    return held


def families(ctl: Controller, nodes: Iterable[Node], now: dt.datetime | None = None
             ) -> Iterator[Metric]:
    """/metrics: the hold as the monitor would see it now, and its figures."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    heard = [n for n in nodes if n.last_heartbeat is not None]
    silences = {n.id: (now - n.last_heartbeat).total_seconds() for n in heard}
    fleet, unheard = count(heard, silences, ctl.settings.ha_suspect_after, now)
    held = GaugeMetricFamily(
        "atwill_ha_mass_silence", "1 while so large a share of the fleet is unheard that "
        "the HA monitor judges no node down (ha_mass_silence_nodes, _share).")
    held.add_metric([], 1 if ha_health.mass_silence(fleet, unheard, limits(ctl)) else 0)
    share = GaugeMetricFamily("atwill_ha_unheard_nodes", "Nodes down, or up and silent "
                              "past ha_suspect_after.")
    share.add_metric([], unheard)
    yield from (held, share)
