"""Tenant networking's external side in the lab, with real VMs: the operator sequence of
seed 003 as a project member, SNAT to the lab's "internet", floating IPs reached from it,
and a node cut off from the controller that keeps serving its VMs."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.agent.net import routing
from atwill.lab import Lab, processes
from tests.integration.vms import (
    READY,
    console,
    create_server,
    first_ip,
    upload_guest,
    wait_console,
    wait_status,
)

LAB = {"nodes": 2, "internet": True, "fence": False}  # partitions must not power off
AUTH = ("--os-username", "fab", "--os-password", "Fabric_123", "--os-project-name", "fabric")

# The "internet host": answers every GET with the client's address, and logs each request.
SERVER = """
import http.server, sys, time
log = open(sys.argv[1], "a", buffering=1)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ip = self.client_address[0]
        log.write(f"{time.time():.3f} {ip} {self.path}\\n")
        body = f"INET-OK {ip}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 80), Handler).serve_forever()
"""
FETCH = """
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())
except OSError as error:
    print("FAIL", error)
"""


def _hello(internet: str) -> str:
    """user_data: fetch the internet host once and say on the console what it saw."""
    return ("#!/bin/sh\n"
            "for i in $(seq 1 40); do\n"
            f"  out=$(timeout 3 wget -qO- http://{internet}/hello 2>/dev/null) && "
            "{ echo \"INET-GOT $out\" > /dev/console; exit 0; }\n"
            "  sleep 2\n"
            "done\n"
            "echo INET-FAIL > /dev/console\n")


def _reporter(internet: str, peer: str) -> str:
    """user_data: every second, fetch the peer VM, renew DHCP, and report both to the
    internet host (so the test sees all three from outside, even with the node cut off)."""
    return ("#!/bin/sh\n"
            "printf '#!/bin/sh\\nexit 0\\n' > /tmp/nop; chmod +x /tmp/nop\n"
            "i=0\n"
            "while [ $i -lt 900 ]; do\n"
            f"  peer=$(timeout 3 wget -qO- http://{peer}/ 2>/dev/null | cut -d' ' -f1)\n"
            "  dhcp=no\n"
            "  timeout 6 udhcpc -i eth0 -n -q -t 2 -T 1 -s /tmp/nop >/dev/null 2>&1 && dhcp=ok\n"
            f"  timeout 3 wget -qO- \"http://{internet}/report/$i/${{peer:-none}}/$dhcp\" "
            ">/dev/null 2>&1\n"
            "  i=$((i+1)); sleep 1\n"
            "done\n")


@pytest.fixture(scope="module")
def fabric(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The seed's project and network, the internet host's server, and two VMs on one node:
    web1 (says what the internet saw) and web2 (reports web1 and DHCP to the internet)."""
    started = time.monotonic()
    log = Path(lab.directory) / "inet-requests.log"
    server = lab.inet_spawn(sys.executable, "-c", SERVER, str(log))
    try:
        upload_guest(lab)
        # An edge site: a node cut off keeps its VMs (the autonomous HA policy), where
        # under the default policy its agent would fence itself once its lease ran out.
        lab.openstack("aggregate", "create", "--property", "ha_policy=autonomous", "edge")
        for node in lab.node_names():
            lab.openstack("aggregate", "add", "host", "edge", node)
        lab.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1",
                      "m1.tiny")
        lab.openstack("project", "create", "fabric")
        lab.openstack("user", "create", "--password", "Fabric_123", "fab")
        lab.openstack("role", "add", "--project", "fabric", "--user", "fab", "member")
        # Seed 003, with today's commands, as the project's member.
        lab.openstack(*AUTH, "network", "create", "fabric")
        lab.openstack(*AUTH, "subnet", "create", "--network", "fabric", "--subnet-range",
                      "192.168.2.0/23", "--dns-nameserver", "10.21.200.2", "subnetfabric")
        lab.openstack(*AUTH, "router", "create", "fabricrouter")
        lab.openstack(*AUTH, "router", "set", "--external-gateway", "public", "fabricrouter")
        lab.openstack(*AUTH, "router", "add", "subnet", "fabricrouter", "subnetfabric")
        lab.openstack(*AUTH, "security", "group", "rule", "create", "default",
                      "--protocol", "icmp")
        lab.openstack(*AUTH, "security", "group", "rule", "create", "default",
                      "--protocol", "udp", "--dst-port", "1:65535")
        lab.openstack(*AUTH, "security", "group", "rule", "create", "default",
                      "--protocol", "tcp", "--dst-port", "1:65535")
        group = lab.openstack(*AUTH, "server", "group", "create", "--policy", "affinity",
                              "together", "-f", "json")["id"]
        scripts = tmp_path_factory.mktemp("user-data")
        (scripts / "hello.sh").write_text(_hello(lab.internet_ip))
        web1 = _create(lab, "web1", "--hint", f"group={group}", "--user-data",
                       str(scripts / "hello.sh"))
        peer = first_ip(lab.openstack(*AUTH, "server", "show", "web1", "-f", "json"))
        (scripts / "report.sh").write_text(_reporter(lab.internet_ip, peer))
        web2 = _create(lab, "web2", "--hint", f"group={group}", "--user-data",
                       str(scripts / "report.sh"))
        host = lab.openstack("server", "show", web1["id"], "-f", "json")[
            "OS-EXT-SRV-ATTR:host"]
        print(f"fabric ready in {time.monotonic() - started:.1f}s")
        yield {"web1": web1["id"], "web2": web2["id"], "web1_ip": peer, "host": host,
               "log": str(log)}
    finally:
        processes.stop(server)


def _create(lab: Lab, name: str, *extra: str) -> dict:
    return create_server(lab, "--flavor", "m1.tiny", "--image", "atwill-guest", "--network",
                         "fabric", *extra, name, auth=AUTH)


def _fetch(lab: Lab, url: str) -> str:
    return lab.inet_exec(sys.executable, "-c", FETCH, url, timeout=20).stdout.strip()


def _reports(log: str, since: float) -> list[str]:
    """Paths of the reports web2 made after `since`."""
    lines = Path(log).read_text().splitlines() if Path(log).exists() else []
    return [line.split()[2] for line in lines
            if float(line.split()[0]) >= since and line.split()[2].startswith("/report/")]


def test_seed_sequence_builds_the_network(lab: Lab, fabric: dict[str, str]) -> None:
    router = lab.openstack(*AUTH, "router", "show", "fabricrouter", "-f", "json")
    info = router["external_gateway_info"]
    info = json.loads(info) if isinstance(info, str) else info
    public = lab.openstack(*AUTH, "network", "show", "public", "-f", "json")["id"]
    assert info["network_id"] == public and info["enable_snat"] is True
    subnet = lab.openstack(*AUTH, "subnet", "show", "subnetfabric", "-f", "json")
    assert subnet["cidr"] == "192.168.2.0/23" and subnet["gateway_ip"] == "192.168.2.1"
    assert "10.21.200.2" in str(subnet["dns_nameservers"])
    ports = lab.openstack(*AUTH, "port", "list", "--router", "fabricrouter", "-f", "json")
    assert any("192.168.2.1" in str(p["Fixed IP Addresses"]) for p in ports)
    rules = lab.openstack(*AUTH, "security", "group", "rule", "list", "default",
                          "-f", "json")
    opened = {(r["IP Protocol"], str(r.get("Port Range"))) for r in rules
              if r.get("Direction", "ingress") == "ingress"}
    assert {p for p, _ in opened} >= {"icmp", "udp", "tcp"}, opened


def test_vm_reaches_the_internet_through_snat(lab: Lab, fabric: dict[str, str]) -> None:
    seen = wait_console(lab, "web1", "INET-", timeout=240, auth=AUTH)
    assert READY in seen
    # The internet host saw the node's own uplink address: the router masqueraded.
    uplink = lab.host(fabric["host"]).external_address
    assert uplink is not None
    assert f"INET-GOT INET-OK {uplink.split('/')[0]}" in seen, seen[-1500:]


def _port(lab: Lab, server: str) -> str:
    return lab.openstack(*AUTH, "port", "list", "--server", server, "-f", "json")[0]["ID"]


def _associate(lab: Lab, fip: str, server: str) -> None:
    lab.openstack(*AUTH, "floating", "ip", "set", "--port", _port(lab, server), fip)
    lab.wait_for(lambda: "atwill-guest" in _fetch(lab, f"http://{fip}/"), 60,
                 f"{server}'s port 80 at {fip} from the internet")


def test_floating_ip_reachable_from_outside_until_disassociated(
        lab: Lab, fabric: dict[str, str]) -> None:
    wait_console(lab, "web1", READY, auth=AUTH)
    fip = lab.openstack(*AUTH, "floating", "ip", "create", "public", "-f", "json")
    address = fip["floating_ip_address"]
    assert address.startswith("203.0.113.")
    # Not a node's uplink address: those are outside the pool.
    assert address not in {h.external_address.split("/")[0] for h in lab.state.nodes()
                           if h.external_address}
    assert "FAIL" in _fetch(lab, f"http://{address}/")
    _associate(lab, address, "web1")
    assert f"atwill-guest {fabric['web1']} web1" in _fetch(lab, f"http://{address}/")
    lab.openstack(*AUTH, "floating", "ip", "unset", "--port", address)
    lab.wait_for(lambda: "FAIL" in _fetch(lab, f"http://{address}/"), 60,
                 f"{address} to stop answering after disassociation")
    fabric["fip"] = address


# A guest signals the stack's wait condition handle through its node's metadata service
# (agent/net/metadata_signal): the handle's endpoint is on the controller, which tenant
# networks do not reach, so the script keeps only the endpoint's path.
SIGNAL_SCRIPT = """#!/bin/sh
url='%endpoint%'
h=$(hostname)
body=$(printf '{"status": "SUCCESS", "reason": "%s up", "data": "%s"}' "$h" "$h")
for i in $(seq 1 60); do
  timeout 10 wget -q -O- --header 'X-Auth-Token: %token%' \\
    --header 'Content-Type: application/json' --post-data "$body" \\
    "http://169.254.169.254/${url#*://*/}" && { echo SIGNAL-SENT > /dev/console; exit 0; }
  sleep 2
done
echo SIGNAL-FAIL > /dev/console
"""


def _stack_template(tag: str) -> dict:
    """A network behind a router, two servers that signal one wait condition, and a
    floating IP on the first."""
    signal = {"str_replace": {"template": SIGNAL_SCRIPT, "params": {
        "%endpoint%": {"get_attr": ["handle", "endpoint"]},
        "%token%": {"get_attr": ["handle", "token"]}}}}

    def server(name: str, network: dict) -> dict:
        return {"type": "OS::Nova::Server", "depends_on": "iface", "properties": {
            "name": f"{tag}-{name}", "image": "atwill-guest", "flavor": "m1.tiny",
            "networks": [network], "user_data_format": "RAW", "user_data": signal}}

    return {"heat_template_version": "2018-08-31", "resources": {
        "net": {"type": "OS::Neutron::Net"},
        "subnet": {"type": "OS::Neutron::Subnet", "properties": {
            "network": {"get_resource": "net"}, "cidr": "10.60.0.0/24"}},
        "router": {"type": "OS::Neutron::Router", "properties": {
            "external_gateway_info": {"network": "public"}}},
        "iface": {"type": "OS::Neutron::RouterInterface", "properties": {
            "router": {"get_resource": "router"}, "subnet": {"get_resource": "subnet"}}},
        "port": {"type": "OS::Neutron::Port", "properties": {
            "network": {"get_resource": "net"},
            "fixed_ips": [{"subnet": {"get_resource": "subnet"}}]}},
        "handle": {"type": "OS::Heat::WaitConditionHandle"},
        "ready": {"type": "OS::Heat::WaitCondition", "properties": {
            "handle": {"get_resource": "handle"}, "count": 2, "timeout": 400}},
        "a": server("a", {"port": {"get_resource": "port"}}),
        "b": server("b", {"network": {"get_resource": "net"}}),
        "fip": {"type": "OS::Neutron::FloatingIP", "depends_on": "iface", "properties": {
            "floating_network": "public", "port_id": {"get_resource": "port"}}}},
        "outputs": {
            "address": {"value": {"get_attr": ["fip", "floating_ip_address"]}},
            "signals": {"value": {"get_attr": ["ready", "data"]}}}}


def _settled(lab: Lab, stack: str, timeout: float) -> dict:
    """The stack once it is no longer in progress (or as it is when time runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = lab.openstack(*AUTH, "stack", "show", stack, "-f", "json")
        if not shown["stack_status"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            return shown
        time.sleep(3)


def _why(lab: Lab, shown: dict) -> str:
    """What a stack that did not complete shows: its reason, resources and guests' consoles."""
    resources = lab.openstack(*AUTH, "stack", "resource", "list", "hs", "-f", "json")
    consoles = {n: console(lab, n, *AUTH)[-1200:] for n in ("hs-a", "hs-b")
                if lab.openstack(*AUTH, "server", "show", n, check=False).returncode == 0}
    return (f"{shown['stack_status']}: {shown.get('stack_status_reason')}\n"
            f"{[(r['resource_name'], r['resource_status']) for r in resources]}\n{consoles}")


def _owned(lab: Lab) -> dict[str, list[str]]:
    """The ids of the project's servers, networks, routers, ports and floating IPs."""
    return {kind: sorted(i["ID"] for i in lab.openstack(*AUTH, *kind.split(), "list",
                                                         "-f", "json"))
            for kind in ("server", "network", "router", "port", "floating ip")}


def test_heat_stack_completes_when_both_guests_signal_and_answers(
        lab: Lab, fabric: dict[str, str], tmp_path: Path) -> None:
    template = tmp_path / "stack.yaml"
    template.write_text(json.dumps(_stack_template("hs")))
    before = _owned(lab)
    started = time.monotonic()
    try:
        lab.openstack(*AUTH, "stack", "create", "-t", str(template), "--timeout", "10", "hs")
        shown = _settled(lab, "hs", 480)
        print(f"stack {shown['stack_status']} in {time.monotonic() - started:.1f}s")
        assert shown["stack_status"] == "CREATE_COMPLETE", _why(lab, shown)
        outputs = {o["output_key"]: o["output_value"] for o in lab.openstack(
            *AUTH, "stack", "show", "hs", "-f", "json")["outputs"]}
        signals = outputs["signals"]
        signals = json.loads(signals) if isinstance(signals, str) else signals
        # Both guests' own signals (their hostnames), not one guest's twice.
        assert sorted(signals.values()) == ["hs-a", "hs-b"], outputs
        for name in ("hs-a", "hs-b"):
            assert "SIGNAL-SENT" in wait_console(lab, name, "SIGNAL-", auth=AUTH)
        server = lab.openstack(*AUTH, "server", "show", "hs-a", "-f", "json")["id"]
        lab.wait_for(lambda: f"atwill-guest {server} hs-a" in _fetch(
            lab, f"http://{outputs['address']}/"), 60, "hs-a through the stack's floating IP")
    finally:
        lab.openstack(*AUTH, "stack", "delete", "--yes", "--wait", "hs", timeout=300)
    assert _owned(lab) == before


def _snapshot(lab: Lab, host: str) -> dict[str, object]:
    """The node's data plane as the kernel and its state files have it."""
    def out(*cmd: str) -> str:
        return lab.exec(host, *cmd).stdout

    links = json.loads(out("ip", "-j", "link", "show"))
    pids = lab.namespace(host).pids()
    daemons = sorted(pid for pid in pids if _comm(pid) in ("dnsmasq",)
                     or _comm(pid).startswith("qemu"))
    return {"links": sorted((i["ifname"], i.get("master"), i.get("operstate")) for i in links
                            if not i["ifname"].startswith(("awg-", "wan0"))),
            "addresses": out("ip", "-4", "-o", "addr", "show"),
            "rules": out("ip", "rule", "show"),
            "routes": [line for line in out("ip", "route", "show", "table", "all").splitlines()
                       if _our_table(line)],
            "nft": out("nft", "list", "table", "inet", "atwill")
            + out("nft", "list", "table", "bridge", "atwill"),
            "daemons": daemons}


def _our_table(route: str) -> bool:
    words = route.split()
    table = words[words.index("table") + 1] if "table" in words else ""
    return table.isdigit() and routing.ours(int(table))


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_partitioned_node_keeps_serving_its_vms(lab: Lab, fabric: dict[str, str]) -> None:
    host = fabric["host"]
    other = lab.openstack("server", "show", fabric["web2"], "-f", "json")[
        "OS-EXT-SRV-ATTR:host"]
    assert other == host, "affinity put web1 and web2 on one node"
    fip = fabric.get("fip") or lab.openstack(
        *AUTH, "floating", "ip", "create", "public", "-f", "json")["floating_ip_address"]
    _associate(lab, fip, "web1")
    lab.wait_for(lambda: any(r.endswith("/atwill-guest/ok")
                             for r in _reports(fabric["log"], 0)), 240,
                 "web2 to report web1 and a DHCP answer to the internet")
    time.sleep(6)  # one reconcile period: the node is at rest
    before = _snapshot(lab, host)

    lab.partition(host)
    try:
        lab.wait_node_state(host, "down", 60)
        cut = time.time()
        # web2 keeps reaching web1 (same node), its DHCP server, and the internet (SNAT);
        # the internet keeps reaching web1 through its floating IP (DNAT).
        lab.wait_for(lambda: len([r for r in _reports(fabric["log"], cut)
                                  if r.endswith("/atwill-guest/ok")]) >= 3, 60,
                     "three good reports from web2 while its node is cut off")
        assert [r for r in _reports(fabric["log"], cut) if not r.endswith("/atwill-guest/ok")
                ] == []
        assert "atwill-guest" in _fetch(lab, f"http://{fip}/")
        during = _snapshot(lab, host)
    finally:
        lab.heal(host)
    lab.wait_node_state(host, "up", 60)
    time.sleep(7)  # a fresh desired state and one reconcile
    after = _snapshot(lab, host)
    assert during == before
    assert after == before
    healed = time.time()
    lab.wait_for(lambda: len(_reports(fabric["log"], healed)) >= 2, 30,
                 "web2 to keep reporting after healing")
    assert all(r.endswith("/atwill-guest/ok") for r in _reports(fabric["log"], healed))
    assert "atwill-guest" in _fetch(lab, f"http://{fip}/")
    for name in ("web1", "web2"):
        wait_status(lab, name, "ACTIVE", timeout=30, auth=AUTH)


def _last_heartbeat(lab: Lab, node: str) -> str | None:
    return next(n["last_heartbeat"] for n in lab.node_list() if n["name"] == node)


def test_all_in_one_uplink_nats_to_the_hosts_own_route(lab: Lab, fabric: dict[str, str],
                                                       tmp_path: Path) -> None:
    """The other node switched to `atwill up`'s uplink: atwill-ext holds the public gateway,
    tenants leave by the host's own routes (here: its WAN), floating IPs answer the host."""
    from atwill.agent.net.uplink import UplinkConfig

    node = next(n for n in lab.node_names() if n != fabric["host"])
    lab.stop_agent(node)
    last = _last_heartbeat(lab, node)
    UplinkConfig(bridge="atwill-ext", nat=True).save(Path(lab.host(node).state_dir))
    lab.start_agent(node)
    # Built only once the restarted agent has reported and its node is up (a create sent at
    # once, as forked CLIs send it, found no host in the gap: "Error creating server").
    lab.wait_for(lambda: _last_heartbeat(lab, node) != last
                 and lab.node_states().get(node) == "up", 60, f"{node}'s new agent up")
    ctl = lab.state.controller
    log = Path(lab.directory) / "ctl-requests.log"
    server = processes.spawn(lab.namespace(ctl.name), [sys.executable, "-c", SERVER, str(log)],
                             Path(lab.directory) / "ctl-http.log")
    try:
        script = tmp_path / "hello.sh"
        script.write_text(_hello(ctl.ip))
        aio = _create(lab, "aio", "--hint", f"different_host={fabric['web1']}",
                      "--user-data", str(script))
        shown = lab.openstack("server", "show", aio["id"], "-f", "json")
        assert shown["OS-EXT-SRV-ATTR:host"] == node
        seen = wait_console(lab, "aio", "INET-", timeout=240, auth=AUTH)
        assert f"INET-GOT INET-OK {lab.host(node).ip}" in seen, seen[-1500:]
        addresses = lab.exec(node, "ip", "-4", "-o", "addr", "show", "dev", "atwill-ext").stdout
        assert "203.0.113.1/24" in addresses
        fip = lab.openstack(*AUTH, "floating", "ip", "create", "public", "-f", "json")[
            "floating_ip_address"]
        lab.openstack(*AUTH, "floating", "ip", "set", "--port", _port(lab, "aio"), fip)

        def from_host() -> str:
            return lab.exec(node, sys.executable, "-c", FETCH, f"http://{fip}/",
                            timeout=20).stdout.strip()

        lab.wait_for(lambda: f"atwill-guest {aio['id']} aio" in from_host(), 60,
                     f"aio at {fip} from its own host")
        lab.openstack(*AUTH, "floating", "ip", "unset", "--port", fip)
        lab.wait_for(lambda: "FAIL" in from_host(), 60, f"{fip} to stop answering")
        lab.openstack(*AUTH, "server", "delete", "--wait", "aio")
    finally:
        processes.stop(server)
