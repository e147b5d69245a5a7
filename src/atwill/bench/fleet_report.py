"""bench fleet: the two modes it measures in one run, their ratios, and the printout."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

# Each comparison: the environment switch, and its value before and after. heartbeat:
# every beat through the whole stack and one transaction (before) or the lean path for
# beats that only say the node lives (after: cluster/liveness.py); revisions: one revision
# for the whole cluster (before: every change for every node, long-polls re-reading it
# each second) or per-node revisions (after); tree: the same switches, the controller
# started from another source tree (before: $ATWILL_BENCH_BEFORE_SRC, e.g. a `git worktree`
# of an older commit, put first on its PYTHONPATH) or from this one (after; or from
# $ATWILL_BENCH_AFTER_SRC when set).
MODES = ("before", "after")
BEFORE_SRC, AFTER_SRC = "ATWILL_BENCH_BEFORE_SRC", "ATWILL_BENCH_AFTER_SRC"
# ATWILL_BENCH_FLEET_PHASES=heartbeats: only the heartbeats-only phase (no long-polls, no
# security-group change): what the heartbeat path costs, in a shorter run.
PHASES = "ATWILL_BENCH_FLEET_PHASES"
COMPARISONS = {
    "heartbeat": ("ATWILL_HEARTBEAT_PATH", {"before": "full", "after": "lean"},
                  {"before": "every beat in full", "after": "lean heartbeat path"}),
    "revisions": ("ATWILL_NODE_REVISIONS", {"before": "off", "after": "on"},
                  {"before": "one cluster revision", "after": "per-node revisions"}),
    "tree": ("PYTHONPATH", {"before": BEFORE_SRC, "after": AFTER_SRC},
             {"before": f"the tree at ${BEFORE_SRC}", "after": f"this tree (or ${AFTER_SRC})"}),
}


def heartbeats_only() -> bool:
    return os.environ.get(PHASES, "") == "heartbeats"


def _value(compare: str, mode: str) -> str:
    name, values, _ = COMPARISONS[compare]
    value = values[mode]
    if value not in (BEFORE_SRC, AFTER_SRC):
        return value
    tree = os.environ.get(value, "")
    if value == AFTER_SRC and not tree:
        return ""  # this tree
    if not tree or not os.path.isdir(os.path.join(tree, "atwill")):
        raise SystemExit(f"bench fleet --compare tree needs ${value}: the src folder of a "
                         "tree (…/src, holding atwill/)")
    return tree


@contextlib.contextmanager
def switched(compare: str, mode: str) -> Iterator[None]:
    """The environment a controller started in here inherits, for that mode."""
    name = COMPARISONS[compare][0]
    value = _value(compare, mode)
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _ratio(after: float | None, before: float | None) -> float | None:
    if after is None or before is None or before == 0:
        return None
    return round(after / before, 2)


def ratios(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float | None]:
    """after ÷ before for each figure (beats/s up is better; CPU, latency, reach down)."""
    out: dict[str, float | None] = {}
    for phase in ("heartbeats_only", "with_long_polls"):
        if phase not in before or phase not in after:
            continue
        for key in ("heartbeats_per_s", "controller_cpu_ms_per_heartbeat",
                    "postgres_cpu_ms_per_heartbeat", "latency_p99_ms",
                "generator_cpu_ms_per_heartbeat"):
            out[f"{phase}.{key}"] = _ratio(after[phase][key], before[phase][key])
    if "security_group_change" not in before or "security_group_change" not in after:
        return out
    sg_before, sg_after = before["security_group_change"], after["security_group_change"]
    for key in ("reached", "reach_median_s", "reach_max_s", "other_nodes_woken"):
        out[f"security_group_change.{key}"] = _ratio(sg_after.get(key), sg_before.get(key))
    return out


def report(results: dict[str, Any]) -> None:
    print(f"fleet of {results['nodes']} SIMULATED nodes (1 Hz heartbeats, real cluster API "
          f"over mTLS; controller {results['workers']} worker(s) on PostgreSQL)")
    labels = COMPARISONS[results["compare"]][2]
    for mode in MODES:
        print(f" {mode} ({labels[mode]})")
        for phase in ("heartbeats_only", "with_long_polls"):
            if phase not in results[mode]:
                continue
            f = results[mode][phase]
            print(f"  {phase:16} {f['heartbeats_per_s']:7.1f} beats/s  controller "
                  f"{f['controller_cpu_ms_per_heartbeat']:.2f} ms CPU/beat "
                  f"({100 * f['controller_cpu_core_share']:.0f} % of a core), PostgreSQL "
                  f"{f['postgres_cpu_ms_per_heartbeat']:.2f} ms/beat, latency p50 "
                  f"{f['latency_p50_ms']} ms p99 {f['latency_p99_ms']} ms, errors "
                  f"{f['errors']}, generator {100 * f['generator_cpu_core_share']:.0f} % "
                  f"of a core ({f['generator_cpu_ms_per_heartbeat']:.2f} ms/beat, "
                  f"{f['generator_processes']} processes)")
        print(f"  steady after {results[mode]['heartbeats_only']['settled_after_s']} s "
              "from the controller's start (None: not within 60 s)")
        sg = results[mode].get("security_group_change")
        if sg is None:
            continue
        if "failed" in sg:
            print(f"  security-group rule: failed ({sg['failed']})")
            continue
        print(f"  security-group rule: API call {sg['api_call_s']} s; reached "
              f"{sg['reached']}/{sg['concerned_nodes']} concerned nodes, median "
              f"{sg['reach_median_s']} s, last {sg['reach_max_s']} s; woke "
              f"{sg['other_nodes_woken']} of {sg['other_nodes']} other nodes' long-polls")
    print(" after ÷ before (same run):")
    for key, value in results["ratios"].items():
        print(f"  {key:52} {value}")
