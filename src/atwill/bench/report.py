"""The cluster benchmark's table, printed from its figures."""

from __future__ import annotations

from typing import Any

from .joins import OVERLAY_TIMEOUT

JOIN_GOAL_S = 2.0
RATIO_GOAL = 0.95


def _join_rows(r: dict[str, Any], label: str, title: str) -> list[str]:
    rows = []
    for kind, what in (("schedulable", "schedulable (up + inventory)"),
                       ("overlay", "overlay answers ping from ctl")):
        key = f"join_{label}_{kind}"
        timeouts = r[key + "_timeouts"]
        late = f"  {timeouts} no answer in {OVERLAY_TIMEOUT:g} s (inf)" if timeouts else ""
        rows.append(f"  {title:28} {what:32} {r[key + '_median_s']:6.2f} "
                    f"{r[key + '_min_s']:6.2f} {r[key + '_max_s']:6.2f}{late}")
        title = ""
    return rows


def _goal(ok: bool) -> str:
    return "meets goal" if ok else "MISSES goal"


def _join_lines(r: dict[str, Any]) -> list[str]:
    delay = r["delay"]
    rtt0, rtt = r["wan_rtt_0ms_ms"], r[f"wan_rtt_{delay}_ms"]
    extra = r[f"join_{delay}_overlay_median_s"] - r["join_0ms_overlay_median_s"]
    return [
        f"Join latency: {r['joins']} rejoins of node2 per setting, from the start of "
        f"`atwill join` (seconds)",
        f"  {'WAN':28} {'until':32} {'median':>6} {'min':>6} {'max':>6}",
        *_join_rows(r, "0ms", f"0 ms (RTT {rtt0:.2f} ms)"),
        *_join_rows(r, delay, f"{delay}/link (RTT {rtt:.0f} ms)"),
        f"  WAN at {delay}: {r[f'wan_{delay}']}",
        f"  under delay the overlay took {extra:+.2f} s more = {extra * 1000 / rtt:.1f} "
        f"round trips",
        f"  goal <= {JOIN_GOAL_S:g} s on the LAN lab: "
        f"{_goal(r['join_0ms_schedulable_median_s'] <= JOIN_GOAL_S)} (schedulable), "
        f"{_goal(r['join_0ms_overlay_median_s'] <= JOIN_GOAL_S)} (overlay)",
    ]


def _throughput_lines(r: dict[str, Any]) -> list[str]:
    return [
        f"Overlay throughput node1 -> node2: iperf3 TCP, 1 stream, {r['iperf_seconds']} s, "
        f"best of {r['rounds']} (Gbit/s), bridge WAN, no delay",
        f"  {'path':52} {'atwill':>7} {'by hand':>7} {'ratio':>6}",
        f"  {'bare veth over the WAN addresses (for scale)':52} "
        f"{r['bare_veth_gbit_s']:7.2f}",
        f"  {'WireGuard node<->node (' + r['wg_atwill_implementation'] + ')':52} "
        f"{r['wg_atwill_gbit_s']:7.2f} {r['wg_hand_gbit_s']:7.2f} {r['wg_ratio']:6.1%}",
        f"  {'OpenVPN UDP node->ctl server->node (client-to-client)':52} "
        f"{r['ovpn_atwill_gbit_s']:7.2f} {r['ovpn_hand_gbit_s']:7.2f} {r['ovpn_ratio']:6.1%}",
        f"  MTU atwill node (controller) / hand: WireGuard {r['wg_atwill_mtu']} "
        f"({r['wg_ctl_mtu']}) / {r['wg_hand_mtu']}, OpenVPN {r['ovpn_atwill_mtu']} "
        f"({r['ovpn_ctl_mtu']}) / {r['ovpn_hand_mtu']}",
        f"  goal >= {RATIO_GOAL:.0%}: WireGuard {_goal(r['wg_ratio'] >= RATIO_GOAL)}, "
        f"OpenVPN {_goal(r['ovpn_ratio'] >= RATIO_GOAL)}",
    ]


def print_report(results: dict[str, Any]) -> None:
    print()
    print("\n".join(_join_lines(results)))
    print()
    print("\n".join(_throughput_lines(results)))
