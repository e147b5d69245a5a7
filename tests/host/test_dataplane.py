"""The data plane on three 'nodes' (namespaces on a plain underlay) with 'port hosts'.

Each node runs DataPlane.apply inside its own namespace from a JSON plan; port hosts are
namespaces plugged into a node's bridge by veth, taking their address with busybox udhcpc.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from atwill.agent.net.model import (
    External,
    FixedIp,
    FloatingIp,
    HostPlan,
    Network,
    Port,
    RemotePort,
    Router,
    Rule,
    SecurityGroup,
    Subnet,
)
from atwill.hostlib.run import run

pytestmark = pytest.mark.host

CALL = """
import json, sys
from pathlib import Path
from atwill.agent.net.model import HostPlan
from atwill.agent.net.plane import DataPlane
call = json.loads(sys.argv[1])
plane = DataPlane(Path(call["dir"]), call["node"])
if call["method"] == "apply":
    plane.apply(HostPlan.from_json(call["plan"]))
elif call["method"] == "teardown":
    plane.teardown()
print(json.dumps(plane.status()))
"""
# udhcpc calls this with the lease in its environment; it configures eth0 like a guest would.
UDHCPC_SCRIPT = """#!/bin/sh
[ "$1" = bound ] || exit 0
ip addr add "$ip/$mask" dev "$interface"
[ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
[ -n "$router" ] && ip route add default via "$router" dev "$interface"
env | grep -E '^(ip|mask|router|mtu|dns|staticroutes)=' > "/tmp/$(basename "$interface")-$$.lease"
exit 0
"""
LISTEN = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(b"open"); c.close()
"""
CONNECT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)
    print(c.recv(8).decode())
except OSError:
    print("closed")
"""
FETCH = """
import urllib.error, urllib.request
try:
    url = "http://169.254.169.254/openstack/latest/meta_data.json"
    print(urllib.request.urlopen(url, timeout=3).read().decode())
except urllib.error.HTTPError as exc:
    print(exc.code)
"""
INTERNET = "198.51.100.1"
EXT_GW = "203.0.113.1"


@dataclass
class Ns:
    name: str

    def run(self, *args: str, check: bool = True,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", self.name, *args], check=check, timeout=timeout)

    def ping(self, address: str, tries: int = 3, source: str | None = None) -> bool:
        extra = ["-I", source] if source else []
        return any(self.run("ping", "-c1", "-W1", "-n", *extra, address,
                            check=False).returncode == 0 for _ in range(tries))

    def tcp(self, address: str, port: int) -> bool:
        return self.run(sys.executable, "-c", CONNECT, address, str(port)).stdout.strip() == "open"


@dataclass
class Lab:
    tag: str
    directory: Path
    namespaces: list[Ns] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def ns(self, suffix: str) -> Ns:
        ns = Ns(f"awt-dp-{self.tag}-{suffix}")
        run(["ip", "netns", "add", ns.name])
        self.namespaces.append(ns)
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    def call(self, node: Ns, name: str, method: str, plan: HostPlan | None = None) -> Any:
        payload = {"dir": str(self.directory / name), "node": f"{self.tag}-{name}",
                   "method": method, "plan": plan.to_json() if plan else None}
        done = node.run(sys.executable, "-c", CALL, json.dumps(payload), timeout=60)
        return json.loads(done.stdout.splitlines()[-1])

    def background(self, ns: Ns, *args: str) -> None:
        self.procs.append(subprocess.Popen(["ip", "netns", "exec", ns.name, *args],
                                           stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))


@pytest.fixture
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if shutil.which("dnsmasq") is None or shutil.which("busybox") is None:
        pytest.skip("needs dnsmasq and busybox (udhcpc)")
    # Not under pytest's 0700 directory: dnsmasq's and the metadata service's own users
    # must pass through every parent of the node's state directory, as on a real host.
    root = Path(tempfile.mkdtemp(prefix="awt-dp-", dir="/tmp"))
    root.chmod(0o711)
    lab = Lab(uuid.uuid4().hex[:6], root)
    try:
        yield lab
    finally:
        shutil.rmtree(root, ignore_errors=True)
        for proc in lab.procs:
            proc.kill()
            proc.wait(timeout=5)
        for ns in reversed(lab.namespaces):
            # Every process left in our uniquely named namespaces is ours: stop each by PID.
            for pid in run(["ip", "netns", "pids", ns.name], check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            run(["ip", "netns", "del", ns.name], check=False)


def _user(pid: int) -> str:
    """The name of the user a process runs as, real and effective alike."""
    ids = next(line.split()[1:] for line in Path(f"/proc/{pid}/status").read_text()
               .splitlines() if line.startswith("Uid:"))
    assert len(set(ids)) == 1, ids
    return pwd.getpwuid(int(ids[0])).pw_name


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _underlay(lab: Lab, count: int) -> tuple[Ns, list[Ns]]:
    under = lab.ns("u")
    for bridge, address in (("ul", "192.0.2.254/24"), ("inet", f"{EXT_GW}/24")):
        under.run("ip", "link", "add", bridge, "type", "bridge")
        under.run("ip", "addr", "add", address, "dev", bridge)
        under.run("ip", "link", "set", bridge, "up")
    under.run("ip", "addr", "add", f"{INTERNET}/32", "dev", "lo")
    nodes = []
    for index in range(count):
        node = lab.ns(f"n{index}")
        for side, peer, bridge in ((f"u{index}", "eth0", "ul"), (f"x{index}", "ext0", "inet")):
            under.run("ip", "link", "add", side, "type", "veth", "peer", "name", peer,
                      "netns", node.name)
            under.run("ip", "link", "set", side, "master", bridge, "up")
            node.run("ip", "link", "set", peer, "up")
        node.run("ip", "addr", "add", f"192.0.2.{index + 1}/24", "dev", "eth0")
        # The caller (not the data plane) provides the external bridge and the node's address.
        node.run("ip", "link", "add", "extbr", "type", "bridge")
        node.run("ip", "link", "set", "ext0", "master", "extbr")
        node.run("ip", "addr", "add", f"203.0.113.{10 + index}/24", "dev", "extbr")
        node.run("ip", "link", "set", "extbr", "up")
        nodes.append(node)
    return under, nodes


def _port_host(lab: Lab, node: Ns, port: Port) -> Ns:
    host = lab.ns(f"p-{port.id}")
    node.run("ip", "link", "add", port.device, "type", "veth", "peer", "name", "eth0",
             "netns", host.name)
    host.run("ip", "link", "set", "eth0", "address", port.mac, "up")
    return host


def _dhcp(lab: Lab, host: Ns) -> str:
    script = lab.directory / "udhcpc.sh"
    if not script.exists():
        script.write_text(UDHCPC_SCRIPT)
        script.chmod(0o755)
    host.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-O", "mtu",
             "-O", "staticroutes", "-t", "6", "-T", "1", "-s", str(script), timeout=20)
    return host.run("ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout


SUBNET_A = Subnet("sa", "10.10.0.0/24", 4, "10.10.0.1", dns_nameservers=("192.0.2.53",))
SUBNET_B = Subnet("sb", "10.10.0.0/24", 4, "10.10.0.1")  # overlaps A on purpose
PORTS = {  # id -> (network, ip, node index, groups)
    "a0": ("neta", "10.10.0.10", 0, ("sga",)), "a1": ("neta", "10.10.0.11", 1, ("sga",)),
    "a2": ("neta", "10.10.0.12", 2, ("sgx",)),
    "b0": ("netb", "10.10.0.10", 0, ("sgb",)), "b1": ("netb", "10.10.0.11", 1, ("sgb",)),
}
OPEN = (Rule("egress", "IPv4"),)


def _mac(port_id: str) -> str:
    return f"fa:16:3e:00:{ord(port_id[0]):02x}:{int(port_id[1]):02x}"


def _port(port_id: str) -> Port:
    network, ip, _, groups = PORTS[port_id]
    subnet = "sa" if network == "neta" else "sb"
    return Port(port_id, network, _mac(port_id), (FixedIp(subnet, ip),), f"tp{port_id}",
                groups, hostname=f"vm-{port_id}")


def _groups(extra: tuple[Rule, ...] = ()) -> list[SecurityGroup]:
    members = {g: tuple(ip for _, ip, _, gs in PORTS.values() if g in gs)
               for g in ("sga", "sgb", "sgx")}
    return [SecurityGroup("sga", OPEN + (Rule("ingress", "IPv4", remote_group_id="sga"),)
                          + extra, members["sga"]),
            SecurityGroup("sgb", OPEN + (Rule("ingress", "IPv4", remote_group_id="sgb"),),
                          members["sgb"]),
            SecurityGroup("sgx", OPEN + (Rule("ingress", "IPv4", remote_group_id="sgx"),),
                          members["sgx"])]


def _plan(lab: Lab, index: int, extra: tuple[Rule, ...] = (), fip: bool = True) -> HostPlan:
    networks = []
    for network_id, vni, subnet in (("neta", 4101, SUBNET_A), ("netb", 4102, SUBNET_B)):
        mine = [p for p, (n, _, i, _) in PORTS.items() if n == network_id and i == index]
        if not mine:
            continue
        remote = [RemotePort(_mac(p), (ip,), f"192.0.2.{i + 1}")
                  for p, (n, ip, i, _) in PORTS.items() if n == network_id and i != index]
        networks.append(Network(network_id, vni, 1400, (subnet,), tuple(remote),
                                tuple(sorted({r.vtep for r in remote}))))
    ports = [_port(p) for p, (_, _, i, _) in PORTS.items() if i == index]
    floating = (FloatingIp("203.0.113.100", "10.10.0.10", "a0"),) if fip and index == 0 else ()
    router = Router("r1", (("neta", "10.10.0.0/24", "10.10.0.1"),), "203.0.113.50", "ext",
                    True, (), floating)
    return HostPlan(node=f"{lab.tag}-n{index}", networks=networks, ports=ports,
                    security_groups=_groups(extra), routers=[router],
                    external=External("ext", "203.0.113.0/24", EXT_GW, "extbr"),
                    metadata={"10.10.0.10": {"port_id": "a0", "meta_data": {"uuid": "uuid-a0"}}}
                    if index == 0 else {})


def _apply(lab: Lab, nodes: list[Ns], **kwargs: Any) -> list[Any]:
    return [lab.call(node, f"n{i}", "apply", _plan(lab, i, **kwargs))
            for i, node in enumerate(nodes)]


def test_dataplane_end_to_end(lab: Lab) -> None:
    started = time.monotonic()
    under, nodes = _underlay(lab, 3)
    hosts = {p: _port_host(lab, nodes[i], _port(p)) for p, (_, _, i, _) in PORTS.items()}
    statuses = _apply(lab, nodes)
    assert all(s["nft"] == {"bridge": True, "inet": True} for s in statuses)

    # DHCP: every port gets its own address (A and B overlap) with the MTU.
    for port_id, host in hosts.items():
        assert f"inet {PORTS[port_id][1]}/24" in _dhcp(lab, host), port_id
        assert "mtu 1400" in host.run("ip", "link", "show", "eth0").stdout

    a0, a1, a2, b0, b1 = (hosts[p] for p in ("a0", "a1", "a2", "b0", "b1"))
    # Same network across nodes over VXLAN; the overlapping network stays apart.
    assert a1.ping("10.10.0.10") and b1.ping("10.10.0.10")
    assert a1.ping("10.10.0.1")  # the distributed gateway on a1's own node
    lab.background(a0, sys.executable, "-c", LISTEN, "22")
    lab.background(b0, sys.executable, "-c", LISTEN, "22")
    time.sleep(0.5)
    assert a1.tcp("10.10.0.10", 22)  # same group
    assert not a2.tcp("10.10.0.10", 22)  # another group
    # b1 reaches its own 10.10.0.10 (b0) only; a0's listener is in the other project.
    assert b1.tcp("10.10.0.10", 22)
    b0.run("ip", "link", "set", "eth0", "down")
    assert not b1.ping("10.10.0.10", tries=1) and not b1.tcp("10.10.0.10", 22)
    b0.run("ip", "link", "set", "eth0", "up")
    b0.run("ip", "route", "replace", "default", "via", "10.10.0.1")  # lost with the link

    # A rule opens exactly its port for the other group, and removing it closes it.
    lab.background(a0, sys.executable, "-c", LISTEN, "8080")
    time.sleep(0.3)
    extra = (Rule("ingress", "IPv4", "tcp", 8080, 8080, "0.0.0.0/0"),)
    _apply(lab, nodes, extra=extra)
    assert a2.tcp("10.10.0.10", 8080) and not a2.tcp("10.10.0.10", 22)
    _apply(lab, nodes)
    assert not a2.tcp("10.10.0.10", 8080)

    # Spoofed sources are dropped.
    a1.run("ip", "addr", "add", "10.10.0.99/24", "dev", "eth0")
    assert not a1.ping("10.10.0.10", tries=1, source="10.10.0.99")
    a1.run("ip", "addr", "del", "10.10.0.99/24", "dev", "eth0")

    # Metadata: a0 gets its own; b0 has the same address on another network: 404.
    assert json.loads(a0.run(sys.executable, "-c", FETCH).stdout)["uuid"] == "uuid-a0"
    assert b0.run(sys.executable, "-c", FETCH).stdout.strip() == "404"

    # SNAT to the 'internet'; the floating IP makes a0 reachable from outside.
    icmp = (Rule("ingress", "IPv4", "icmp", None, None, "0.0.0.0/0"),)
    _apply(lab, nodes, extra=icmp)
    assert a1.ping(INTERNET) and a0.ping(INTERNET)
    assert under.ping("203.0.113.100")
    _apply(lab, nodes, extra=icmp, fip=False)
    assert not under.ping("203.0.113.100", tries=1)
    assert a0.ping(INTERNET)

    # Re-applying changes nothing; a deleted bridge and a flushed table are repaired.
    before = lab.call(nodes[0], "n0", "status")
    again = lab.call(nodes[0], "n0", "apply", _plan(lab, 0, extra=icmp, fip=False))
    assert again == before
    bridge = next(n for n in before["links"] if n.startswith("ab"))
    nodes[0].run("ip", "link", "del", bridge)
    nodes[0].run("nft", "flush", "table", "inet", "atwill")
    assert not a1.ping("10.10.0.10", tries=1) or not b1.ping("10.10.0.10", tries=1)
    repaired = lab.call(nodes[0], "n0", "apply", _plan(lab, 0, extra=icmp, fip=False))
    assert repaired["links"] == before["links"]
    assert a1.ping("10.10.0.10") and b1.ping("10.10.0.10")
    assert not a2.tcp("10.10.0.10", 22)

    # Teardown leaves nothing of ours behind, and stops the daemons.
    for index, node in enumerate(nodes):
        status = lab.call(node, f"n{index}", "status")
        pids = [p for p in status["dnsmasq"].values() if p] + [status["metadata_pid"]]
        # Neither daemon keeps root: each runs as a system user of its own.
        for pid in status["dnsmasq"].values():
            assert _user(pid) == "atwill-dhcp"
        assert _user(status["metadata_pid"]) == "atwill-meta"
        assert _mode(lab.directory / f"n{index}" / "metadata") == 0o750
        done = lab.call(node, f"n{index}", "teardown")
        assert done["links"] == [] and done["rules"] == 0 and done["metadata_pid"] is None
        assert done["nft"] == {"bridge": False, "inet": False} and done["dnsmasq"] == {}
        assert "atwill" not in node.run("nft", "list", "tables").stdout
        for pid in filter(None, pids):
            assert not Path(f"/proc/{pid}").exists() or \
                "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    assert time.monotonic() - started < 170
