"""The cluster benchmark: join latency and overlay throughput, in labs made and removed here.

One run, on this machine:
1. a WireGuard lab with two nodes: iperf3 node1 -> node2 over the bare WAN veth,
   over atwill's overlay, and over a WireGuard tunnel made by hand between the same
   namespaces (handwg.py); then rejoins of node2 timed at 0 ms WAN delay and, with
   the same delay on every access link, at DELAY;
2. an OpenVPN lab with two nodes: iperf3 node1 -> node2 over atwill's overlay
   (through the controller's server, client-to-client) and over the same topology
   made by hand (handovpn.py).
Throughput runs alternate atwill and hand-made and keep the best of `rounds`,
since the machine is shared. Every lab is taken down, whatever happens.
"""

from __future__ import annotations

import json
import math
import secrets
import signal
import statistics
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from ..lab import Lab, LabError, naming
from ..lab.netns import list_namespaces
from . import handovpn, handwg, iperf
from .joins import JoinSample, JoinTimer
from .report import print_report

Results = dict[str, Any]
NODE_A, NODE_B = "node1", "node2"


def _free_name() -> str:
    """'b' + 3 hex characters that no lab directory or namespace uses yet."""
    taken = list_namespaces()
    for _ in range(100):
        name = "b" + secrets.token_hex(2)[:3]
        prefix = naming.namespace(name, "")
        if not Lab(name).directory.exists() and not any(n.startswith(prefix) for n in taken):
            return name
    raise LabError("no free lab name of the form bXXX")


@contextmanager
def temporary_lab(**up: Any) -> Iterator[Lab]:
    """A new lab, up for the block and down after it (`up` undoes itself if it fails)."""
    lab = Lab(_free_name())
    lab.up(**up)
    try:
        yield lab
    finally:
        lab.down()


def _wan_rtt_ms(lab: Lab, target: str) -> float:
    """Average WAN round trip from the controller host to `target`'s WAN address."""
    out = lab.exec(naming.CONTROLLER, "ping", "-n", "-q", "-c", "5", "-i", "0.05",
                   lab.host(target).ip, timeout=30).stdout
    # "rtt min/avg/max/mdev = 0.040/0.052/0.071/0.010 ms"
    return float(out.rsplit("=", 1)[1].split("/")[1])


def _overlay_ips(lab: Lab) -> dict[str, str]:
    return {node["name"]: node["overlay_ip"] for node in lab.node_list()}


def _overlay_link(lab: Lab, host: str, prefix: str) -> dict[str, Any]:
    links = json.loads(lab.exec(host, "ip", "-d", "-j", "link", "show").stdout)
    return next(link for link in links if link["ifname"].startswith(prefix))


def _best(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Each run `rounds` times, alternating, keeping each one's best figure."""
    best = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for key, run in runs.items():
            best[key] = max(best[key], run())
    return best


def _stats(results: Results, prefix: str, values: list[float | None]) -> None:
    """Median, min, max; a timed-out sample (None) counts as infinitely slow."""
    times = [math.inf if v is None else v for v in values]
    results[f"{prefix}_median_s"] = statistics.median(times)
    results[f"{prefix}_min_s"] = min(times)
    results[f"{prefix}_max_s"] = max(times)
    results[f"{prefix}_timeouts"] = times.count(math.inf)


def _record_joins(results: Results, label: str, samples: list[JoinSample]) -> None:
    _stats(results, f"join_{label}_schedulable", [s.schedulable for s in samples])
    _stats(results, f"join_{label}_overlay", [s.overlay for s in samples])
    results[f"join_{label}_samples"] = [(s.schedulable, s.overlay) for s in samples]


def measure_wireguard(lab: Lab, results: Results, workdir: Path, seconds: int,
                      rounds: int) -> None:
    """Bare veth, atwill's WireGuard and hand-made WireGuard, node1 -> node2."""
    src, dst = lab.namespace(NODE_A), lab.namespace(NODE_B)
    link = _overlay_link(lab, NODE_A, "awg-")
    results["wg_atwill_implementation"] = ("kernel" if link["linkinfo"]["info_kind"]
                                           == "wireguard" else "wireguard-go")
    results["wg_atwill_mtu"] = link["mtu"]
    results["wg_ctl_mtu"] = _overlay_link(lab, naming.CONTROLLER, "awg-")["mtu"]
    results["wg_hand_mtu"] = handwg.MTU
    target = _overlay_ips(lab)[NODE_B]
    with ExitStack() as stack:
        _, hand = handwg.tunnel(stack, workdir, (src, lab.host(NODE_A).ip),
                                (dst, lab.host(NODE_B).ip))
        best = _best({
            "bare_veth_gbit_s": lambda: iperf.gbits(dst, src, lab.host(NODE_B).ip, workdir,
                                                    seconds),
            "wg_atwill_gbit_s": lambda: iperf.gbits(dst, src, target, workdir, seconds),
            "wg_hand_gbit_s": lambda: iperf.gbits(dst, src, hand, workdir, seconds),
        }, rounds)
    results.update(best)
    results["wg_ratio"] = best["wg_atwill_gbit_s"] / best["wg_hand_gbit_s"]


def measure_joins(lab: Lab, results: Results, joins: int, delay: str) -> None:
    """Rejoins of node2 at 0 ms, then with `delay` on every access link."""
    timer = JoinTimer(lab, NODE_B)
    try:
        results["wan_rtt_0ms_ms"] = _wan_rtt_ms(lab, NODE_B)
        _record_joins(results, "0ms", timer.rejoins(joins))
        for host in list(lab.state.hosts):
            lab.set_wan(host, delay)
        results[f"wan_{delay}"] = ("userspace emulator (no netem in this kernel)"
                                   if lab.state.wan_emulated else "netem")
        results[f"wan_rtt_{delay}_ms"] = _wan_rtt_ms(lab, NODE_B)
        _record_joins(results, delay, timer.rejoins(joins))
    finally:
        timer.close()


def measure_openvpn(lab: Lab, results: Results, workdir: Path, seconds: int,
                    rounds: int) -> None:
    """atwill's OpenVPN and the same topology by hand, node1 -> node2 via the controller."""
    src, dst = lab.namespace(NODE_A), lab.namespace(NODE_B)
    results["ovpn_atwill_mtu"] = _overlay_link(lab, NODE_A, "aov-")["mtu"]
    results["ovpn_ctl_mtu"] = _overlay_link(lab, naming.CONTROLLER, "aov-")["mtu"]
    results["ovpn_hand_mtu"] = handovpn.MTU
    target = _overlay_ips(lab)[NODE_B]
    with ExitStack() as stack:
        ctl = lab.state.controller
        _, hand = handovpn.tunnel(stack, workdir, (lab.namespace(ctl.name), ctl.ip),
                                  [(src, NODE_A), (dst, NODE_B)])
        best = _best({
            "ovpn_atwill_gbit_s": lambda: iperf.gbits(dst, src, target, workdir, seconds),
            "ovpn_hand_gbit_s": lambda: iperf.gbits(dst, src, hand, workdir, seconds),
        }, rounds)
    results.update(best)
    results["ovpn_ratio"] = best["ovpn_atwill_gbit_s"] / best["ovpn_hand_gbit_s"]


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`: the labs go down


def main(joins: int = 5, seconds: int = 5, rounds: int = 3, delay: str = "50ms") -> Results:
    """Run everything; print the table and return the figures."""
    results: Results = {"joins": joins, "iperf_seconds": seconds, "rounds": rounds,
                        "delay": delay}
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with tempfile.TemporaryDirectory(prefix="atwill-bench-") as tmp:
            with temporary_lab(nodes=2) as lab:
                measure_wireguard(lab, results, Path(tmp), seconds, rounds)
                measure_joins(lab, results, joins, delay)
            with temporary_lab(nodes=2, overlay="openvpn") as lab:
                measure_openvpn(lab, results, Path(tmp), seconds, rounds)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_report(results)
    return results
