"""`atwill bench volumes --guest`: what the guest printed, made into figures.

The guest prints one line per timed run on its console (volumes_guest.script):
`VBENCH T <round> <target> <case> <start> <end>`, start and end from busybox ash's
$EPOCHREALTIME (seconds, microseconds); `VBENCH ERR ...` when a run failed. Targets are
"vol" (the attached volume) and "loc" (a scratch area of the guest's own root disk, a
qcow2 overlay on the compute node); "none" is the spawn baseline (the random loops'
dd processes against /dev/zero), subtracted from the random cases of the same round.
Pure: no lab here.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

# case code in the guest script -> (name in the figures, unit)
CASES = {"sw": ("seq-write", "MiB/s"), "sr": ("seq-read", "MiB/s"),
         "qw": ("4k-write-qd1", "IOPS"), "qr": ("4k-read-qd1", "IOPS"),
         "rw": ("4k-randwrite", "IOPS"), "rr": ("4k-randread", "IOPS")}
SEQUENTIAL = ("seq-write", "seq-read")
GOAL = 0.70
LINE = re.compile(r"VBENCH T (\d+) (vol|loc|none) ([a-z]+) (\d+(?:\.\d+)?) (\d+(?:\.\d+)?)")
ERROR = re.compile(r"VBENCH ERR (.*)")


def parse(console: str) -> tuple[list[tuple[int, str, str, float]], list[str]]:
    """(round, target, case code, seconds) for each timed run, and the error lines."""
    runs = [(int(m[1]), m[2], m[3], float(m[5]) - float(m[4]))
            for m in LINE.finditer(console)]
    return runs, [m[1].strip() for m in ERROR.finditer(console)]


def rate(code: str, seconds: float, sizes: dict[str, int], spawn: float | None) -> float | None:
    """MiB/s for the sequential cases, IOPS for the others; None when the time left is
    nothing (a random case no slower than its spawn baseline says nothing)."""
    if code in ("rw", "rr"):
        if spawn is None:
            return None
        seconds -= spawn
    if seconds <= 0:
        return None
    if code in ("sw", "sr"):
        return sizes["mib"] / seconds
    return (sizes["small"] if code in ("qw", "qr") else sizes["rand"]) / seconds


def figures(runs: list[tuple[int, str, str, float]], sizes: dict[str, int]) -> dict[str, Any]:
    """Per case: each target's rates by round, its best and median, and the ratios
    volume / local of the bests and of the medians. Round 0 (the fill) is left out."""
    spawn = {r: s for r, t, c, s in runs if t == "none" and c == "sp"}
    rates: dict[str, dict[str, list[float]]] = {}
    for rnd, target, code, seconds in runs:
        if rnd == 0 or target == "none" or code not in CASES:
            continue
        value = rate(code, seconds, sizes, spawn.get(rnd))
        if value is not None:
            rates.setdefault(code, {}).setdefault(target, []).append(value)
    out: dict[str, Any] = {}
    for code, (name, unit) in CASES.items():
        got = rates.get(code, {})
        if not got.get("vol") or not got.get("loc"):
            continue
        vol, loc = got["vol"], got["loc"]
        out[name] = {"unit": unit, "vol": [round(v, 1) for v in vol],
                     "loc": [round(v, 1) for v in loc],
                     "ratio": round(max(vol) / max(loc), 2),
                     "median_ratio": round(statistics.median(vol) / statistics.median(loc), 2)}
    if spawn:
        out["spawn_s"] = round(statistics.median(spawn.values()), 3)
    return out


def verdict(figs: dict[str, Any]) -> str:
    """The issue's goal, sequential >= 70 % of local, on the best-of-rounds ratios."""
    ratios = [figs[name]["ratio"] for name in SEQUENTIAL if name in figs]
    if len(ratios) < len(SEQUENTIAL):
        return "not measured"
    return "met" if min(ratios) >= GOAL else "missed"


def report(figs: dict[str, Any], facts: dict[str, Any]) -> str:
    """The printed table."""
    lines = ["", f"In-guest dd, volume over the overlay ({facts['storage']} -> "
             f"{facts['compute']}) / the root disk's scratch area (local qcow2), "
             f"{facts['rounds']} rounds alternating, best kept (guest accel {facts['accel']})"]
    for _, (name, unit) in CASES.items():
        if name not in figs:
            lines.append(f"  {name:>14}: not measured")
            continue
        f = figs[name]
        lines.append(f"  {name:>14}: volume {max(f['vol']):9.1f} {unit:5}  local "
                     f"{max(f['loc']):9.1f} {unit:5}  ratio {f['ratio']:.2f} "
                     f"(medians {f['median_ratio']:.2f})")
    if facts.get("evictions"):
        lines.append(f"  reads from the disks: both files' pages dropped from the hosts' page "
                     f"cache before each read case ({facts['evictions']} times)")
    lines.append(f"  goal: sequential >= {GOAL:.0%} of local: {verdict(figs)}")
    if facts["accel"] != "kvm":
        lines.append("  the guest runs under TCG (no KVM): its emulated CPU may bound both "
                     "sides, so the ratio can look better than the I/O path alone")
    return "\n".join(lines)
