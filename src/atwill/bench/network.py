"""The network benchmark: port-to-port throughput, port plumbing, security-group changes.

One run, in a two-node WireGuard lab made and removed here:
1. two port hosts (porthost.py), one per node, on one tenant network: iperf3 between
   them over VXLAN over the overlay, against iperf3 between the same two nodes over
   their bare overlay addresses, alternating, best of `rounds` each;
2. `repeats` times: `openstack port create --host node1`, the device appearing right
   after it returns, until the node's bridge has it and until its dnsmasq offers and
   acknowledges a lease (a DHCP probe sending every 50 ms from before the create);
3. `repeats` times: a port host on node2 in a group without ingress rules, probed by
   TCP connects from node1 every 50 ms; `security group rule create` opening the port,
   until the first connect succeeds; then `rule delete`, until the first that fails.
Times are from the start of each `openstack` command (which, being the CLI, includes
its own start-up; the time it took to return is reported too).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ..agent.hypervisor.tap import tap_name
from ..lab import Lab, naming
from ..lab.netns import run
from . import iperf
from .cluster import temporary_lab
from .porthost import PortHost, Probe, random_mac, wait_plumbed
from .signals import sigterm_unwinds

Results = dict[str, Any]
NODE_A, NODE_B = "node1", "node2"
NET, SUBNET, CIDR, GROUP = "bnet", "bsub", "10.77.0.0/24", "bclosed"
FRESH_IPS = "10.77.0.{}0"
SG_PORT = 7100
SETTLE = 0.3  # a probe runs this long before the change, so "blocked" is seen first


class NetBench:
    """The lab, its tenant network, and port hosts made on demand."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.count = 0

    def setup(self) -> None:
        self.lab.openstack("network", "create", NET)
        self.lab.openstack("subnet", "create", "--network", NET, "--subnet-range", CIDR,
                           SUBNET)
        # A new group has only egress rules: ingress to its ports is closed.
        self.lab.openstack("security", "group", "create", GROUP)

    def port_host(self, stack: ExitStack, node: str,
                  *extra: str) -> tuple[PortHost, dict[str, Any], dict[str, float]]:
        """A port bound to `node`, its port host plugged and leased; times from the create."""
        self.count += 1
        host = PortHost(stack, naming.namespace(self.lab.name, f"p{self.count}"), random_mac())
        probe = host.dhcp()
        try:
            start = time.monotonic()
            port = self.lab.openstack("port", "create", "--network", NET, "--host", node,
                                      "--mac-address", host.mac, *extra,
                                      f"bport{self.count}", "-f", "json")
            returned = time.monotonic()
            node_ns, device = self.lab.namespace(node), tap_name(port["id"])
            host.plug(node_ns, device)
            plugged = time.monotonic()
            plumbed = wait_plumbed(node_ns, device)
            lease = probe.result(timeout=60)
        finally:
            probe.stop()
        times = {"returned": returned - start, "device": plugged - start,
                 "plumbed": plumbed - start}
        if lease["ack"] is None:
            times["failure"] = (f"no DHCP lease in 30 s ({lease['sent']} requests, offer at "
                                f"{lease['offer'] and lease['offer'] - start}); "
                                + self._dhcp_state(node))
            return host, port, times
        host.configure(lease)
        times.update(offer=lease["offer"] - start, ack=lease["ack"] - start)
        return host, port, times


    def _dhcp_state(self, node: str) -> str:
        """The node's dnsmasq hosts files and log tails, for a port that got no lease."""
        root = Path(self.lab.host(node).state_dir) / "net" / "dhcp"
        parts = []
        for path in sorted(root.glob("*/hosts")) + sorted(root.glob("*/log")):
            parts.append(f"{path}: {path.read_text(errors='replace')[-1500:]}")
        return " | ".join(parts)


def _overlay_ip(lab: Lab, node: str) -> str:
    return str(next(n["overlay_ip"] for n in lab.node_list() if n["name"] == node))


def _mtu(lab: Lab, host: str, prefix: str) -> int:
    links = json.loads(lab.exec(host, "ip", "-j", "link", "show").stdout)
    return int(next(link["mtu"] for link in links if link["ifname"].startswith(prefix)))


def _best(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Each run `rounds` times, alternating, keeping each one's best figure."""
    best = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for key, measure in runs.items():
            best[key] = max(best[key], measure())
    return best


def _wait_ping(src: PortHost, address: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run(src.ns.argv(["ping", "-c1", "-W1", "-n", address]), check=False).returncode == 0:
            return
    raise TimeoutError(f"{address} does not answer ping from {src.ns.name}")


def measure_throughput(bench: NetBench, stack: ExitStack, results: Results, workdir: Path,
                       seconds: int, rounds: int) -> PortHost:
    """iperf3 port host on node1 -> port host on node2, and node1 -> node2 bare overlay."""
    lab = bench.lab
    a, _, first_a = bench.port_host(stack, NODE_A)
    b, _, first_b = bench.port_host(stack, NODE_B)
    for times in (first_a, first_b):
        if "failure" in times:
            raise RuntimeError(times["failure"])
    results["first_port"] = {NODE_A: first_a, NODE_B: first_b}
    assert b.ip is not None
    _wait_ping(a, b.ip)
    overlay = _overlay_ip(lab, NODE_B)
    results["mtu_overlay"] = _mtu(lab, NODE_A, "awg-")
    results["mtu_port"] = int(json.loads(a.ns.ip("-j", "link", "show", "eth0").stdout)[0]["mtu"])
    best = _best({
        "overlay_gbit_s": lambda: iperf.gbits(lab.namespace(NODE_B), lab.namespace(NODE_A),
                                              overlay, workdir, seconds),
        "ports_gbit_s": lambda: iperf.gbits(b.ns, a.ns, str(b.ip), workdir, seconds),
    }, rounds)
    results.update(best)
    results["throughput_ratio"] = best["ports_gbit_s"] / best["overlay_gbit_s"]
    return a


def measure_port_create(bench: NetBench, results: Results, repeats: int) -> None:
    """New ports on node1 (its bridge already there), each deleted again."""
    samples = []
    for index in range(repeats):
        # A fresh address each time: a node's dnsmasq keeps the lease of a deleted port and
        # refuses its address to the next port that IPAM gives it to (see the README).
        fixed = f"subnet={SUBNET},ip-address={FRESH_IPS.format(index + 1)}"
        with ExitStack() as rep:
            _, port, times = bench.port_host(rep, NODE_A, "--fixed-ip", fixed)
            samples.append(times)
            bench.lab.openstack("port", "delete", port["id"])
    results["port_samples"] = samples


def _change(bench: NetBench, a: PortHost, address: str, port: int, mode: str,
            command: list[str]) -> tuple[dict[str, float], Any]:
    """Run `command` while probing address:port from `a`; when the probe saw the change."""
    probe = Probe(a.ns, "tcpprobe", mode, address, str(port), "60")
    try:
        time.sleep(SETTLE)
        start = time.monotonic()
        out = bench.lab.openstack(*command)
        returned = time.monotonic()
        seen = probe.result(timeout=90)
    finally:
        probe.stop()
    if seen["at"] is None:
        raise RuntimeError(f"{' '.join(command[:4])}: TCP {port} never became {mode} "
                           f"({seen['attempts']} attempts)")
    if seen["at"] < start:
        raise RuntimeError(f"TCP {port} was already {mode} before the change")
    # What the CLI alone costs: a one-request command, timed the same way.
    show = time.monotonic()
    bench.lab.openstack("security", "group", "show", GROUP, "-f", "json")
    return {"returned": returned - start, "effective": seen["at"] - returned,
            "from_start": seen["at"] - start, "cli_show": time.monotonic() - show}, out


def measure_secgroup(bench: NetBench, stack: ExitStack, results: Results, a: PortHost,
                     repeats: int) -> None:
    """Open, then close again, one TCP port per repetition on a closed group's port."""
    c, _, times = bench.port_host(stack, NODE_B, "--security-group", GROUP)
    if "failure" in times:
        raise RuntimeError(times["failure"])
    assert c.ip is not None
    ports = [SG_PORT + i for i in range(repeats)]
    listener = Probe(c.ns, "tcpprobe", "listen", *map(str, ports))
    stack.callback(listener.stop)
    opened, closed = [], []
    for port in ports:
        times, rule = _change(bench, a, c.ip, port, "open", [
            "security", "group", "rule", "create", GROUP, "--ingress", "--protocol", "tcp",
            "--dst-port", str(port), "-f", "json"])
        opened.append(times)
        times, _ = _change(bench, a, c.ip, port, "closed",
                           ["security", "group", "rule", "delete", rule["id"]])
        closed.append(times)
    results["sg_open_samples"], results["sg_close_samples"] = opened, closed


def main(seconds: int = 5, rounds: int = 3, repeats: int = 3) -> Results:
    """Run everything; print the table and return the figures."""
    results: Results = {"iperf_seconds": seconds, "rounds": rounds, "repeats": repeats}
    with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="atwill-bench-") as tmp:
        with temporary_lab(nodes=2) as lab, ExitStack() as stack:
            bench = NetBench(lab)
            bench.setup()
            a = measure_throughput(bench, stack, results, Path(tmp), seconds, rounds)
            measure_port_create(bench, results, repeats)
            measure_secgroup(bench, stack, results, a, repeats)
    print_report(results)
    return results


# report ---------------------------------------------------------------------------------
def _row(title: str, samples: list[dict[str, Any]], key: str) -> str:
    values = [s[key] for s in samples if key in s]
    if not values:
        return f"  {title:44}   none"
    return (f"  {title:44} {statistics.median(values):6.2f} {min(values):6.2f} "
            f"{max(values):6.2f}")


def print_report(r: Results) -> None:
    first = r["first_port"]
    ports, opened, closed = r["port_samples"], r["sg_open_samples"], r["sg_close_samples"]
    lines = [
        "",
        f"Port-to-port throughput node1 -> node2: iperf3 TCP, 1 stream, "
        f"{r['iperf_seconds']} s, best of {r['rounds']} (Gbit/s)",
        f"  bare overlay (node overlay addresses, MTU {r['mtu_overlay']}): "
        f"{r['overlay_gbit_s']:.2f}",
        f"  port hosts over VXLAN over the overlay (MTU {r['mtu_port']}):  "
        f"{r['ports_gbit_s']:.2f}  = {r['throughput_ratio']:.0%} of the bare overlay",
        "",
        f"Port create -> plumbed -> DHCP, {len(ports)} ports on node1 (seconds from the "
        f"start of `openstack port create --host`)",
        f"  {'until':44} {'median':>6} {'min':>6} {'max':>6}",
        _row("the CLI returned", ports, "returned"),
        _row("the device exists (moved in after that)", ports, "device"),
        _row("the device is in the network's bridge, up", ports, "plumbed"),
        _row("dnsmasq's DHCPOFFER", ports, "offer"),
        _row("dnsmasq's DHCPACK (the lease)", ports, "ack"),
        *[f"  NO LEASE: {s['failure']}" for s in ports if "failure" in s],
        f"  first port of each node (bridge, VXLAN, dnsmasq made then): lease after "
        f"{first[NODE_A]['ack']:.2f} s (node1), {first[NODE_B]['ack']:.2f} s (node2)",
        "",
        f"Security-group rule change on node2's port, TCP connects from node1 every 50 ms, "
        f"{len(opened)} rules (seconds)",
        f"  {'':44} {'median':>6} {'min':>6} {'max':>6}",
        _row("rule create: the CLI returned", opened, "returned"),
        _row("rule create started -> first connect", opened, "from_start"),
        _row("rule create returned -> first connect", opened, "effective"),
        _row("rule delete: the CLI returned", closed, "returned"),
        _row("rule delete started -> first unanswered", closed, "from_start"),
        _row("rule delete returned -> first unanswered", closed, "effective"),
        _row("`security group show` (the CLI's own cost)", opened + closed, "cli_show"),
    ]
    print("\n".join(lines))
