"""Security groups on every path into a port, failure isolation, and metadata bound to the
port (issue 11, items 2, 3 and 3b), on real nftables in throwaway namespaces."""

from __future__ import annotations

import json
import sys
import time
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
from tests.host.test_dataplane import EXT_GW, LISTEN, Lab, Ns, _port_host, _underlay
from tests.host.test_dataplane import lab as lab  # noqa: F401 - the fixture, shared

pytestmark = pytest.mark.host

# Like test_dataplane's, but one port's rules can be made to fail in the kernel (a jump to
# a chain that does not exist), and the failed pieces are returned instead of raised.
CALL = """
import json, sys
from pathlib import Path
from atwill.agent.net import secgroups
from atwill.agent.net.model import HostPlan
from atwill.agent.net.plane import DataPlane, PlaneError
call = json.loads(sys.argv[1])
original = secgroups.port_chains
def failing(port, groups):
    commands = original(port, groups)
    if port.id in call["fail"]:
        commands.append({"add": {"rule": {"family": "inet", "table": "atwill",
            "chain": "in_" + secgroups.short(port.id),
            "expr": [{"jump": {"target": "no_such_chain"}}]}}})
    return commands
secgroups.port_chains = failing
plane = DataPlane(Path(call["dir"]), call["node"])
errors = {}
try:
    plane.apply(HostPlan.from_json(call["plan"]))
except PlaneError as exc:
    errors = exc.errors
print(json.dumps(errors))
"""
FETCH = """
import urllib.error, urllib.request
try:
    url = "http://169.254.169.254/openstack/latest/meta_data.json"
    print(urllib.request.urlopen(url, timeout=3).read().decode())
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError:
    print("nothing")
"""
CONNECT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)
    print(c.recv(8).decode())
except OSError:
    print("closed")
"""
FIP = "203.0.113.100"
SUBNET = Subnet("s", "10.20.0.0/24", 4, "10.20.0.1")
# id -> (ip, node, groups, port security)
PORTS = {"v0": ("10.20.0.10", 0, ("sgv",), True), "x0": ("10.20.0.11", 0, (), False),
         "f0": ("10.20.0.13", 0, ("sgv",), True), "e0": ("10.20.0.14", 0, (), True),
         "r1": ("10.20.0.12", 1, ("sgo",), True)}
GROUPS = [SecurityGroup("sgv", (Rule("egress", "IPv4"),
                                Rule("ingress", "IPv4", "tcp", 8080, 8080, "0.0.0.0/0"),
                                Rule("ingress", "IPv4", "icmp", None, None, "0.0.0.0/0"))),
          SecurityGroup("sgo", (Rule("egress", "IPv4"),
                                Rule("ingress", "IPv4", "icmp", None, None, "0.0.0.0/0")))]


def _mac(port_id: str) -> str:
    return f"fa:16:3e:00:{ord(port_id[0]):02x}:{int(port_id[1]):02x}"


def _port(port_id: str) -> Port:
    ip, _, groups, secured = PORTS[port_id]
    return Port(port_id, "net", _mac(port_id), (FixedIp("s", ip),), f"tp{port_id}", groups,
                port_security=secured)


def _plan(lab: Lab, index: int) -> HostPlan:
    remote = tuple(RemotePort(_mac(p), (ip,), f"192.0.2.{i + 1}")
                   for p, (ip, i, _, _) in PORTS.items() if i != index)
    network = Network("net", 4201, 1400, (SUBNET,), remote,
                      tuple(sorted({r.vtep for r in remote})))
    floating = (FloatingIp(FIP, "10.20.0.10", "v0"),) if index == 0 else ()
    router = Router("r", (("net", "10.20.0.0/24", "10.20.0.1"),), "203.0.113.50", "ext", True,
                    (), floating)
    ports = [_port(p) for p, (_, i, _, _) in PORTS.items() if i == index]
    return HostPlan(f"{lab.tag}-n{index}", [network], ports, GROUPS, [router],
                    External("ext", "203.0.113.0/24", EXT_GW, "extbr"),
                    {"10.20.0.10": {"port_id": "v0", "meta_data": {"uuid": "uuid-v0"}}}
                    if index == 0 else {})


def _apply(lab: Lab, node: Ns, index: int, fail: tuple[str, ...] = ()) -> dict[str, Any]:
    payload = {"dir": str(lab.directory / f"n{index}"), "node": f"{lab.tag}-n{index}",
               "plan": _plan(lab, index).to_json(), "fail": list(fail)}
    done = node.run(sys.executable, "-c", CALL, json.dumps(payload), timeout=60)
    errors: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return errors


def _tcp(ns: Ns, address: str, port: int) -> bool:
    return ns.run(sys.executable, "-c", CONNECT, address, str(port)).stdout.strip() == "open"


def test_every_path_into_a_port_meets_its_rules(lab: Lab) -> None:
    under, nodes = _underlay(lab, 2)
    hosts = {p: _port_host(lab, nodes[i], _port(p)) for p, (_, i, _, _) in PORTS.items()}
    for port_id, host in hosts.items():
        host.run("ip", "addr", "add", f"{PORTS[port_id][0]}/24", "dev", "eth0")
        host.run("ip", "route", "add", "default", "via", "10.20.0.1")
    # f0's rules are refused by the kernel: every other port is still enforced and served.
    errors = _apply(lab, nodes[0], 0, fail=("f0",))
    assert list(errors) == ["port f0 rules (inet)"], errors
    assert _apply(lab, nodes[1], 1) == {}
    v0, x0, f0, e0, r1 = (hosts[p] for p in ("v0", "x0", "f0", "e0", "r1"))
    for port in (22, 8080):
        lab.background(v0, sys.executable, "-c", LISTEN, str(port))
        lab.background(e0, sys.executable, "-c", LISTEN, str(port))
    time.sleep(0.5)
    paths = {"outside": (under, FIP), "the node itself": (nodes[0], FIP),
             "a port on the same node": (x0, "10.20.0.10"),
             "a port on another node": (r1, "10.20.0.10")}
    for path, (source, target) in paths.items():
        assert _tcp(source, target, 8080), path
        assert not _tcp(source, target, 22), path
    # A port with no rules drops everything; a port whose rules failed gets nothing.
    assert x0.ping("10.20.0.10") and not x0.ping("10.20.0.14", tries=1)
    assert not _tcp(x0, "10.20.0.14", 8080)
    assert not x0.ping("10.20.0.13", tries=1) and not f0.ping("10.20.0.1", tries=1)
    # The next reconcile (without the failure) admits it.
    assert _apply(lab, nodes[0], 0) == {}
    assert x0.ping("10.20.0.13")


def test_a_spoofing_port_gets_no_metadata(lab: Lab) -> None:
    _, nodes = _underlay(lab, 2)
    hosts = {p: _port_host(lab, nodes[0], _port(p)) for p in ("v0", "x0")}
    for port_id, host in hosts.items():
        host.run("ip", "addr", "add", f"{PORTS[port_id][0]}/24", "dev", "eth0")
        host.run("ip", "route", "add", "default", "via", "10.20.0.1")
    assert _apply(lab, nodes[0], 0) == {}
    v0, x0 = hosts["v0"], hosts["x0"]
    assert json.loads(v0.run(sys.executable, "-c", FETCH).stdout)["uuid"] == "uuid-v0"
    # x0 has port security off: it may send from any address, but its tap is not v0's.
    v0.run("ip", "link", "set", "eth0", "down")
    nodes[0].run("ip", "neigh", "flush", "dev", "all", check=False)
    x0.run("ip", "addr", "flush", "dev", "eth0")
    x0.run("ip", "addr", "add", "10.20.0.10/24", "dev", "eth0")
    x0.run("ip", "route", "add", "default", "via", "10.20.0.1")
    assert "uuid-v0" not in x0.run(sys.executable, "-c", FETCH).stdout
    x0.run("ip", "link", "set", "eth0", "address", _mac("v0"))
    assert "uuid-v0" not in x0.run(sys.executable, "-c", FETCH).stdout
