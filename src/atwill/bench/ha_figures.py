"""The HA benchmark's figures: phases from the poller's samples, counts from the logs,
medians and p95, and the printed table (see ha.py)."""

from __future__ import annotations

import math
import re
import statistics
from typing import Any

Results = dict[str, Any]
VICTIM = "node1"
# Published defaults, not measured here: Masakari's host monitor (60 s of monitoring, then
# wait_period_after_service_update 180 s) and Proxmox VE's HA (about 2 minutes).
PUBLISHED = (("Masakari (60 s monitoring + 180 s wait)", 240.0),
             ("Proxmox VE HA (about 2 min)", 120.0))
GOAL_TOTAL_S, GOAL_DETECT_S = 15.0, 3.0


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (with 3 samples, p95 is the largest)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def split(samples: list, cut: float, victim: str) -> dict[str, float | None]:
    """Seconds from the cut to: node seen down, fenced (servers DOWN or moved), every
    server ACTIVE elsewhere."""
    out: dict[str, float | None] = {"detect": None, "fence": None, "active": None}
    for when, servers in samples:
        on_victim = [s for s in servers if s[2] == victim]
        if out["detect"] is None and any(s[3] in ("UNKNOWN", "DOWN") for s in on_victim):
            out["detect"] = when - cut
        # The monitor evacuates in the pass that fenced the node, so its servers are
        # seldom seen DOWN on it: their leaving it says the fence agent answered "off".
        if out["fence"] is None and (any(s[3] == "DOWN" for s in on_victim)
                                     or len(on_victim) < len(servers)):
            out["fence"] = when - cut
        if servers and all(s[1] == "ACTIVE" and s[2] != victim for s in servers):
            out["active"] = when - cut
            break
    # A node fenced between two samples is seen DOWN before it was seen UNKNOWN.
    if out["detect"] is None:
        out["detect"] = out["fence"]
    return out


def events_in_order(events: list[list]) -> bool:
    """detect -> fence (Success) -> rebuild, by the events' own (second) timestamps."""
    first = {}
    for name, started, result in events:
        first.setdefault(name, (started, result))
    need = ("ha_host_down", "ha_fence_node", "conductor_rebuild_server")
    if any(name not in first for name in need) or first["ha_fence_node"][1] != "Success":
        return False
    times = [first[name][0] for name in need]
    return times == sorted(times)


LOG_PATTERNS = {
    "detections": r"node {node} is down: no heartbeat",
    "fence_attempts": r"node {node} (NOT )?fenced",
    "evacuations": r"evacuated from {node} to",
}


def log_counts(controller_log: str, agent_log: str, node: str) -> dict[str, int]:
    """What the controller did about node, and whether its agent fenced itself."""
    counts = {key: len(re.findall(pattern.format(node=re.escape(node)), controller_log))
              for key, pattern in LOG_PATTERNS.items()}
    counts["self_fencings"] = agent_log.count("SELF-FENCING")
    return counts

def summarize(r: Results) -> None:
    """Median and p95 of each phase and of the total, per size."""
    r["summary"] = {}
    for count, runs in r["power_loss"].items():
        done = [s for s in runs if None not in (s["detect"], s["fence"], s["active"])]
        phases = {"detection": [s["detect"] for s in done],
                  "fencing": [s["fence"] - s["detect"] for s in done],
                  "rebuild": [s["active"] - s["fence"] for s in done],
                  "total": [s["active"] for s in done]}
        r["summary"][count] = {
            "runs": len(runs), "completed": len(done),
            "events_in_order": all(s["events_in_order"] for s in runs),
            **{f"{k}_median_s": statistics.median(v) for k, v in phases.items() if v},
            **{f"{k}_p95_s": percentile(v, 0.95) for k, v in phases.items() if v}}


def _phase(s: dict[str, Any], key: str) -> str:
    if f"{key}_median_s" not in s:
        return f"{'-':>13}"
    return f"{s[f'{key}_median_s']:6.2f} {s[f'{key}_p95_s']:6.2f}"


def _goal(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_report(r: Results) -> None:
    lines = ["", "Power loss -> every HA instance ACTIVE on another node (seconds from the cut; "
             "3-node lab, fence_ipmilan against the node's virtual BMC; polled every 0.2 s)",
             f"  {'N':>3} {'runs':>5}   {'detection':>13} {'fencing':>13} {'rebuild':>13} "
             f"{'total':>13}   events in order",
             f"  {'':>3} {'':>5}   " + " ".join([f"{'median':>6} {'p95':>6}"] * 4)]
    for count, s in r["summary"].items():
        lines.append(f"  {count:>3} {s['completed']:>2}/{s['runs']:<2}   "
                     + " ".join(_phase(s, k) for k in ("detection", "fencing", "rebuild",
                                                       "total"))
                     + f"   {'yes' if s['events_in_order'] else 'NO'}")
        if "total_median_s" in s:
            lines.append(f"      goal total <= {GOAL_TOTAL_S:g} s: "
                         f"{_goal(s['total_p95_s'] <= GOAL_TOTAL_S)} (p95), detection <= "
                         f"{GOAL_DETECT_S:g} s: {_goal(s['detection_p95_s'] <= GOAL_DETECT_S)}")
    lines.append("  published defaults, not measured here: " + "; ".join(
        f"{name} ~{secs:g} s" for name, secs in PUBLISHED))
    lines += _before_after(r) + _rounds(r)
    f = r["lossy"]
    rtt = f"{f['rtt_ms']:.0f} ms" if f["rtt_ms"] is not None else "no answer"
    lines += ["", f"False positives: {f['servers']} HA servers on {VICTIM}, its link "
              f"{f['delay']} delay and {f['loss']} loss each way (ping RTT {rtt}) for "
              f"{f['seconds']:g} s",
              f"  node not UP in {f['not_up_samples']} of {f['samples']} samples; "
              f"detections {f['detections']}, fence attempts {f['fence_attempts']}, "
              f"evacuations {f['evacuations']}, self-fencings {f['self_fencings']}, servers "
              f"moved {f['moved']} (expected: all 0); health after: {f['health_after']}",
              f"  whole run {r['elapsed_s']:.0f} s"]
    print("\n".join(lines))


def _before_after(r: Results) -> list[str]:
    """Detection with the peers' confirmation (this run) against without (same run)."""
    if "before" not in r:
        return []
    count = next(iter(r["before"]["summary"]))
    was, now = r["before"]["summary"][count], r["summary"].get(count, {})
    if "detection_median_s" not in was or "detection_median_s" not in now:
        return ["", f"Before/after (N = {count}): incomplete runs"]
    ratio = {k: now[f"{k}_s"] / was[f"{k}_s"] for k in ("detection_median", "detection_p95",
                                                        "total_median")}
    r["before_after"] = ratio
    return ["", f"Detection, N = {count}, same run: peers' confirmation off (ha_peer_confirm "
            f"0) median {was['detection_median_s']:.2f} s, p95 {was['detection_p95_s']:.2f} s "
            f"-> on {now['detection_median_s']:.2f} s, {now['detection_p95_s']:.2f} s: "
            f"{ratio['detection_median']:.2f}x / {ratio['detection_p95']:.2f}x "
            f"(total median {ratio['total_median']:.2f}x)"]


def _rounds(r: Results) -> list[str]:
    p = r.get("partition_rounds")
    if not p:
        return []
    moved = [x["active_elsewhere_s"] for x in p["per_round"]]
    return ["", f"Partition/heal: {p['rounds']} of {p['asked']} rounds in {p['elapsed_s']:g} s "
            f"(cut -> ACTIVE elsewhere {moved} s); QEMU sampled every 0.1 s on every host: "
            f"{p['double_copy_samples']} of {p['samples']} samples with an instance twice "
            f"(expected 0); rounds whose agents kept a stray copy: "
            f"{p['rounds_with_stray_state']}"]
