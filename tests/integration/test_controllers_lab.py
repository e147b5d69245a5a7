"""Two controllers of one cloud on PostgreSQL in the lab (`lab up --controllers 2
--database postgresql`, docs/controllers.md): one controller is killed while servers are
being created, nodes heartbeat and a client lists servers; nothing is lost, no node is
marked down, no instance is created twice, and the survivor runs the background loops.
The cloud runs on the WireGuard overlay: each controller is a peer of its own (its own
key and overlay address), every node peers with both, and the nodes' heartbeats and
long-polls go through the overlay, to ctl2's overlay address once ctl is dead.
ATWILL_LAB_CONTROLLERS_OVERLAY=none runs it without an overlay (heartbeats on the
underlay). Measured on this shared 2-core machine (2026-12-07): the WireGuard variant
passed 9 runs of 9 (25-34 s each, the lab included; 7 with a short heartbeat timeout,
since replaced: a beat moves to the next controller only when refused or cut, agent/client.py;
that passed its 1 run), the underlay one 1 of 1; in none of the 8 that
logged it was a heartbeat answered more than 1.5 s after the previous one at the
failover (the agent logs it when one is), against the 2.6 s floor.
ATWILL_LAB_CONTROLLERS_LOGS=DIR keeps every log of a run there.
A HUNG controller (SIGSTOPped: it accepts connections and never answers) is given up
by the agents' heartbeats within the HA window since beats are ordered (epoch, seq:
core/beat_order): test_a_hung_controller_is_failed_over stops ctl, then ctl2, each for
HUNG seconds, while the nodes heartbeat; every node's last heartbeat stays fresh and
none is marked down. Measured (2026-12-07, WireGuard): passed 3 runs of 3; in the 2
that kept their logs, at each of the 8 failovers (2 nodes x 2 stops x 2 runs) the agent
logged its heartbeat answered 1.81-1.84 s after the previous one (interval 1 s +
BEAT_ANSWER 0.8 s), against the 2.6 s down floor; the database's last heartbeat of a
node was at most 2.97 s old at any sample (whole seconds: up to 1 s of that rounding).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from atwill.lab import Lab, commands
from atwill.lab.naming import cloud_host

# fence=False: a node whose agent is killed at the end is marked down by the survivor but
# not powered off by a BMC (the agent is what dies, not the host).
OVERLAY = os.environ.get("ATWILL_LAB_CONTROLLERS_OVERLAY", "wireguard")
LAB = {"nodes": 2, "controllers": 2, "database": "postgresql", "fence": False,
       "overlay": OVERLAY}
SERVERS = 4
KILL_AFTER = 2  # servers whose create was answered before the first controller dies
HUNG = 8.0  # seconds a controller is kept SIGSTOPped (over three down floors of 2.6 s)
FRESH = 3.5  # a node's last heartbeat (whole seconds) is at most this old meanwhile
WINDOW = 90  # the client's bound, seconds
# Where to copy every controller's and agent's log (and the client's) when the module
# ends, before the lab goes: set it to keep the story of a run (e.g. /tmp/ctl-runs/N).
KEEP_LOGS = os.environ.get("ATWILL_LAB_CONTROLLERS_LOGS")

# The client: an openstacksdk program on a lab host, using the lab's clouds.yaml (the
# cloud's name, one address per controller). One thread creates servers one after the
# other; a create whose connection broke is looked up by name and sent again only if the
# server does not exist (Nova has no idempotency key; this is what a careful client
# does). Another lists servers and hypervisors all along (keystoneauth's connect_retries
# take a refused connection to the next address) and says which servers it knew of were
# missing; a list whose answer was cut mid-body by the kill fails (keystoneauth does not
# retry that) and the next one is asked at once.
CLIENT = r"""
import json, sys, threading, time
import openstack

count, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
out = threading.Lock()
created, done = {}, threading.Event()

def say(**event):
    with out:
        print(json.dumps(event), flush=True)

def create():
    conn = openstack.connect(cloud="atwill")
    image = conn.image.find_image("blank").id
    flavor = conn.compute.find_flavor("blank").id
    network = conn.network.find_network("private").id
    for index in range(count):
        name = f"ha{index}"
        for attempt in range(5):
            try:
                server = conn.compute.create_server(name=name, image_id=image,
                    flavor_id=flavor, networks=[{"uuid": network}])
                created[name] = server.id
                say(created=name, id=server.id, attempt=attempt)
                break
            except Exception as error:
                say(create_error=name, error=type(error).__name__)
            found = []
            while not found and time.monotonic() < deadline:
                try:
                    found = [s.id for s in conn.compute.servers() if s.name == name]
                    break
                except Exception as error:
                    say(lookup_error=name, error=type(error).__name__)
            if found:
                created[name] = found[0]
                say(created=name, id=found[0], attempt=attempt, found=True)
                break
    done.set()

def watch():
    conn = openstack.connect(cloud="atwill", connect_retries=3)
    rounds = 0
    while time.monotonic() < deadline and (not done.is_set() or rounds < 3):
        known = dict(created)
        rounds += done.is_set()
        try:
            listed = {s.name: s.id for s in conn.compute.servers()}
            down = [h.name for h in conn.compute.hypervisors(details=True)
                    if h.state != "up"]
        except Exception as error:
            say(list_error=type(error).__name__, detail=str(error)[:200])
            continue
        missing = [n for n, i in known.items() if listed.get(n) != i]
        say(listed=len(listed), missing=missing, down=down)

threads = [threading.Thread(target=create), threading.Thread(target=watch)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
say(finished=True)
"""


@pytest.fixture(scope="module", autouse=True)
def _keep_logs(lab: Lab) -> Iterator[None]:
    yield
    if not KEEP_LOGS:
        return
    keep = Path(KEEP_LOGS)
    keep.mkdir(parents=True, exist_ok=True)
    for host in lab.state.hosts.values():
        for log in Path(host.state_dir).glob("*.log"):
            shutil.copy(log, keep / f"{host.name}-{log.name}")
    for log in lab.directory.glob("*.log"):
        shutil.copy(log, keep / log.name)


def _connections(lab: Lab, host: str) -> set[str]:
    """Peer addresses of the established connections to the API port in a host."""
    out = lab.exec(host, "ss", "-Htn", "state", "established",
                   f"( sport = :{commands.CONTROLLER_PORT} )").stdout
    return {line.split()[-1].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}


def _desired(lab: Lab, node: str) -> dict:
    return json.loads((Path(lab.host(node).state_dir) / "desired.json").read_text())


def _node_ips(lab: Lab) -> set[str]:
    """Where the nodes' connections to a controller come from: their overlay addresses,
    or their own without an overlay."""
    if OVERLAY == "none":
        return {h.ip for h in lab.state.nodes()}
    return {_desired(lab, node)["overlay"]["address"] for node in lab.node_names()}


def _overlay_url(lab: Lab, controller: str) -> str:
    """A controller's API through the overlay, by the address it was given."""
    settings = yaml.safe_load((Path(lab.host(controller).state_dir) / "atwill.yaml")
                              .read_text())
    return f"https://{settings.get('overlay_address') or '100.72.0.1'}:8686"


def _qemus(lab: Lab, uuid: str) -> list[tuple[str, int]]:
    """(node, pid) of every QEMU of this instance in the lab."""
    found = []
    for node in lab.node_names():
        for pid in lab.namespace(node).pids():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"qemu-system-x86_64") and uuid.encode() in argv:
                found.append((node, pid))
    return found


def _logged(lab: Lab, keep: Callable[[str], bool], last: int = 0) -> str:
    """The lines every controller and agent logged that keep accepts (the last `last` of
    each log when set), each after its host's name."""
    lines = []
    for host in lab.state.hosts.values():
        for name in ("controller.log", "agent.log"):
            path = Path(host.state_dir) / name
            if path.exists():
                kept = [f"{host.name}: {line}" for line in
                        path.read_text(errors="replace").splitlines() if keep(line)]
                lines += kept[-last:] if last else kept
    return "\n".join(lines)


def _trace(lab: Lab, uuid: str) -> str:
    """What every controller and agent logged about one instance (for a failure)."""
    return _logged(lab, lambda line: uuid in line)


def _story(lab: Lab) -> str:
    """What the controllers and agents said about nodes, controllers and failing over
    (for a failure: the lab goes with the test)."""
    words = ("is down", "is back", "trying", "WARNING", "ERROR", "overlay", "applied")
    return _logged(lab, lambda line: any(w in line for w in words), last=40)


def _log(lab: Lab, host: str) -> str:
    return (Path(lab.host(host).state_dir) / "controller.log").read_text(errors="replace")


def test_the_cloud_has_two_controllers_on_postgresql_in_its_own_host(lab: Lab) -> None:
    pg = lab.host("pg")
    postgres = pg.processes["postgres"]
    assert postgres.pid in lab.namespace("pg").pids()  # its own host, the PID we started
    assert lab.state.database_url.startswith("postgresql://atwill:") and \
        f"@{pg.ip}:5432/" in lab.state.database_url
    ctl, ctl2 = (Path(lab.host(n).state_dir) for n in ("ctl", "ctl2"))
    assert (ctl2 / "controller-added.json").exists()  # `controller add --bundle`
    keys = "fernet-keys.imported/0"  # imported into the database at ctl's first start
    assert (ctl2 / keys).read_bytes() == (ctl / keys).read_bytes()
    catalog = lab.openstack("endpoint", "list", "-f", "json")
    assert {e["URL"].split("/")[2] for e in catalog} == {f"{cloud_host(lab.name)}:8686"}
    for node in lab.node_names():
        agent = yaml.safe_load((Path(lab.host(node).state_dir) / "agent.yaml").read_text())
        for name in ("ctl", "ctl2"):
            assert lab.controller_url_of(name) in agent["controller_urls"]
    if OVERLAY == "none":
        return
    # Each controller is a WireGuard peer of its own: its own key (a bundle carries none)
    # and its own overlay address, and every node peers with both.
    key = "overlay/wg-private.key"
    assert (ctl2 / key).read_bytes() != (ctl / key).read_bytes()
    overlay = [_overlay_url(lab, name) for name in ("ctl", "ctl2")]
    assert overlay[0] != overlay[1]
    for node in lab.node_names():
        agent = yaml.safe_load((Path(lab.host(node).state_dir) / "agent.yaml").read_text())
        assert agent["controller_urls"][:2] == overlay  # failed over between first
        peers = _desired(lab, node)["overlay"]["peers"]
        controllers = {p["overlay_ip"]: p["public_key"] for p in peers
                       if p["name"].startswith("controller")}
        assert sorted(controllers) == sorted(u.split("/")[2].split(":")[0] for u in overlay)
        assert len(set(controllers.values())) == 2


def _controller_pids(lab: Lab, name: str) -> list[int]:
    """The controller process the lab started and its atwill children (never its host's
    wireguard-go: the overlay stays up, the controller accepts and never answers)."""
    root = lab.host(name).processes["controller"].pid
    parents: dict[int, int] = {}
    for pid in lab.namespace(name).pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"atwill" in cmdline:
            parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
    family = [root]
    for pid in family:
        family += [child for child, parent in parents.items() if parent == pid]
    return family


def _ages(lab: Lab) -> dict[str, float]:
    """Seconds since each node's last heartbeat, as the database has it."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return {n["name"]: (now - dt.datetime.fromisoformat(
        n["last_heartbeat"].rstrip("Z"))).total_seconds() for n in lab.node_list()}


def _hung(lab: Lab, name: str) -> tuple[list[dict], list[str]]:
    """Stop a controller (SIGSTOP, by the PIDs the lab started) for HUNG seconds while the
    nodes heartbeat; each second, the nodes' heartbeat ages and states. SIGCONT always."""
    pids = _controller_pids(lab, name)
    seen: list[dict] = []
    stopped: list[int] = []
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        end = time.monotonic() + HUNG
        while time.monotonic() < end:
            time.sleep(1.0)
            seen.append({"ages": _ages(lab), "states": lab.node_states()})
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    return seen, [str(p) for p in stopped]


def test_a_hung_controller_is_failed_over(lab: Lab) -> None:
    """ctl hangs (SIGSTOP) while the nodes heartbeat through it: each node's beat times
    out there (agent/client.BEAT_ANSWER) and goes to ctl2 with its next sequence; no
    node's last heartbeat grows old, none is marked down. Then ctl2 hangs and the nodes
    go back to ctl (where the next test wants them)."""
    lab.wait_for(lambda: _node_ips(lab) <= _connections(lab, "ctl"), 15, "nodes on ctl")
    for name, other in (("ctl", "ctl2"), ("ctl2", "ctl")):
        seen, pids = _hung(lab, name)
        print(name, "stopped:", pids, json.dumps(seen))  # shown if the test fails
        assert seen and all(max(s["ages"].values()) <= FRESH for s in seen), \
            f"{seen}\n{_story(lab)}"
        assert all(set(s["states"].values()) == {"up"} for s in seen), seen
        assert _node_ips(lab) <= _connections(lab, other), _story(lab)
        lab.wait_for(lambda n=name: lab.controller_alive(n), 5, f"{name} running again")
        time.sleep(2.0)  # the hung controller's backlog answered (stale beats: 409)
        assert lab.node_states() == {"node1": "up", "node2": "up"}
    lab.wait_for(lambda: _node_ips(lab) <= _connections(lab, "ctl"), 15, "nodes on ctl")
    assert "is down" not in _log(lab, "ctl") + _log(lab, "ctl2"), _story(lab)


def test_a_controller_killed_while_creating_loses_nothing(lab: Lab) -> None:
    blank = lab.directory / "blank.raw"
    blank.write_bytes(bytes(1 << 20))  # boots nothing: the smallest guest, idle in its BIOS
    lab.openstack("image", "create", "--file", str(blank), "--disk-format", "raw",
                  "--container-format", "bare", "blank")
    lab.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", "blank")
    # The client talks to the first controller (the name's first address), the agents to
    # it too (through the overlay, from their overlay addresses, when there is one).
    lab.wait_for(lambda: _node_ips(lab) <= _connections(lab, "ctl"), 15,
                 "nodes on ctl")
    env = commands.openstack_env(Path(lab.host("ctl").state_dir) / "clouds.yaml")
    argv = [commands.PYTHON, "-c", CLIENT, str(SERVERS), str(WINDOW)]
    events: list[dict] = []
    killed = 0  # events before the kill
    with open(lab.directory / "client.log", "w") as errors, subprocess.Popen(
            lab.namespace("ctl").argv(argv), stdout=subprocess.PIPE, stderr=errors,
            text=True, env=env) as client:
        assert client.stdout is not None
        for line in client.stdout:
            events.append(json.loads(line))
            if not killed and sum("created" in e for e in events) >= KILL_AFTER:
                lab.kill_controller("ctl")  # by the PID the lab started
                killed = len(events)
    print("\n".join(map(json.dumps, events)))  # shown if the test fails
    assert client.returncode == 0, (lab.directory / "client.log").read_text()[-3000:]
    assert killed and not lab.controller_alive("ctl")
    lists = [e for e in events if "listed" in e]
    assert lists and not [e for e in lists if e["missing"]], events  # nothing lost
    cut = [i for i, e in enumerate(events) if "list_error" in e]
    assert len(cut) <= 1 and all(i >= killed for i in cut), events  # the one in flight
    # no node was down at any list
    assert not [e for e in lists if e["down"]], f"{events}\n{_story(lab)}"
    created = {e["created"]: e["id"] for e in events if "created" in e}
    assert sorted(created) == [f"ha{i}" for i in range(SERVERS)], events
    after = events[killed:]  # the survivor answered creates and lists
    assert len([e for e in after if "created" in e]) >= SERVERS - KILL_AFTER
    assert [e for e in after if "listed" in e]
    # The nodes (joined through ctl) moved to the survivor (through the overlay: their
    # heartbeats and long-polls reach ctl2's overlay address); every server is built
    # there, each exactly once.
    lab.wait_for(lambda: _node_ips(lab) <= _connections(lab, "ctl2"), 15,
                 "nodes on ctl2")

    def built() -> list[dict] | None:
        servers = lab.openstack("server", "list", "-f", "json")
        return servers if all(s["Status"] == "ACTIVE" for s in servers) else None

    servers = lab.wait_for(built, 90, "every server ACTIVE", interval=1)
    assert sorted((s["Name"], s["ID"]) for s in servers) == sorted(created.items())
    twice = {uuid: _qemus(lab, uuid) for uuid in created.values()
             if len(_qemus(lab, uuid)) != 1}
    if twice:  # the whole story, untruncated
        pytest.fail(f"not one QEMU each: {twice}\n" +
                    "\n".join(_trace(lab, uuid) for uuid in twice), pytrace=False)
    assert lab.node_states() == {"node1": "up", "node2": "up"}
    assert "is down" not in _log(lab, "ctl") + _log(lab, "ctl2"), _story(lab)


def test_the_survivor_runs_the_node_monitor(lab: Lab) -> None:
    """With ctl dead, only ctl2's background loops can mark a silent node down."""
    if lab.controller_alive("ctl"):  # run alone (-k): the kill above did not happen
        lab.kill_controller("ctl")
    lab.kill_agent("node2")  # by the PID the lab started; its guests keep running
    lab.wait_node_state("node2", "down", 15)
    assert "node node2 is down" in _log(lab, "ctl2")
    lab.start_agent("node2")
    lab.wait_node_state("node2", "up", 30)
    assert "node node2 is back" in _log(lab, "ctl2")

