"""The HA benchmark: power loss -> every HA instance ACTIVE on another node; a lossy link.

One run, in a three-node lab made and removed here (each node's virtual IPMI BMC is its
fence device, as in `atwill lab`):
1. one server on node2 and one on node3 stay up all along, so both hold the guest image
   in their cache, as busy nodes do: a rebuild there times the control plane and QEMU,
   not an image download;
2. for each size N and repetition: N servers (HA by default: no HA_Enabled=False) ACTIVE
   on node1, whose power is then cut (lab.kill_node: every process of its namespace,
   QEMU included, SIGKILLed at once). A poller in the controller's namespace reads
   GET /servers/detail (2.16, admin: host_status) every 0.2 s: detection is the first
   answer where their host_status is no longer UP (node down), fencing the first DOWN
   (its BMC said off), rebuild the last of the N ACTIVE on another node. Their evacuate
   actions must show ha_host_down, ha_fence_node (Success) and conductor_rebuild_server
   in that order. Then node1 is powered on, waits until it is up again with its stale
   copies gone, and the N are deleted;
3. false positives: servers on node1 while its access link has DELAY and LOSS each way
   for `lossy_s` seconds; counted are answers where node1 was not UP, and the log lines
   of detections, fence attempts, evacuations (controller) and self-fencing (agent).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..config import Settings
from ..guest.build import build_image
from ..lab import Lab, commands, naming
from . import ha_rounds
from .cluster import temporary_lab
from .ha_figures import VICTIM, events_in_order, log_counts, print_report, split, summarize
from .signals import sigterm_unwinds

Results = dict[str, Any]
SPARES = ("node2", "node3")
FLAVOR, NET, SUBNET, CIDR = "bench.ha", "hanet", "hasub", "10.79.0.0/24"
TIMEOUT = 180

# Runs in the controller's namespace; one JSON line out (progress lines before it).
SDK = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import openstack
call = json.loads(sys.argv[1])
c = openstack.connect(cloud="atwill")
ids = set(call.get("ids", ()))

def servers():
    got = c.compute.get("/servers/detail", microversion="2.16").json()["servers"]
    return [s for s in got if s["id"] in ids]

def events(sid):
    acts = c.compute.get(f"/servers/{sid}/os-instance-actions").json()["instanceActions"]
    evac = [a for a in acts if a["action"] == "evacuate"]
    if not evac:
        return []
    req = evac[0]["request_id"]
    one = c.compute.get(f"/servers/{sid}/os-instance-actions/{req}", microversion="2.51")
    found = one.json()["instanceAction"]["events"]
    return [(e["event"], e["start_time"], e["result"]) for e in found]

if call["do"] == "create":
    made = [c.compute.create_server(name=f"{call['name']}{i}", flavor_id=call["flavor"],
                                    image_id=call["image"], availability_zone=call["zone"],
                                    networks=[{"uuid": call["network"]}]).id
            for i in range(call["count"])]
    ids, deadline = set(made), time.time() + call["timeout"]
    while time.time() < deadline:
        found = servers()
        if all(s["status"] == "ACTIVE" for s in found) and len(found) == len(made):
            break
        if any(s["status"] == "ERROR" for s in found):
            break
        time.sleep(0.2)
    print(json.dumps({"ids": made, "status": {s["id"]: s["status"] for s in servers()}}))
elif call["do"] == "delete":
    for sid in ids:
        c.compute.delete_server(sid, ignore_missing=True)
    deadline = time.time() + call["timeout"]
    while servers() and time.time() < deadline:
        time.sleep(0.5)
    print(json.dumps({"left": [s["id"] for s in servers()]}))
else:  # "watch": samples until every server is ACTIVE elsewhere ("move") or the time is up
    victim, samples = call["victim"], []
    servers()
    print("ready", flush=True)
    deadline = time.time() + call["timeout"]
    while time.time() < deadline:
        found = servers()
        now = time.time()
        samples.append([now, [[s["id"], s["status"], s.get("OS-EXT-SRV-ATTR:host"),
                               s.get("host_status")] for s in found]])
        if call["move"] and len(found) == len(ids) and all(
                s["status"] == "ACTIVE" and s.get("OS-EXT-SRV-ATTR:host") != victim
                for s in found):
            break
        time.sleep(0.2)
    print(json.dumps({"samples": samples,
                      "events": {sid: events(sid) for sid in ids} if call["move"] else {}}))
"""


class HaBench:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        ctl = lab.state.controller
        self.env = dict(os.environ, **commands.openstack_env(Path(ctl.state_dir) / "clouds.yaml"))
        self.ctl_log = Path(ctl.state_dir) / "controller.log"
        self.ids: dict[str, str] = {}

    def _argv(self, call: dict[str, Any]) -> list[str]:
        return self.lab.namespace(naming.CONTROLLER).argv(
            [sys.executable, "-c", SDK, json.dumps(call)])

    def sdk(self, call: dict[str, Any]) -> dict[str, Any]:
        out = subprocess.run(self._argv(call), capture_output=True, text=True, check=True,
                             env=self.env, timeout=TIMEOUT + 120).stdout
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result

    def watcher(self, ids: list[str], move: bool, timeout: float) -> subprocess.Popen:
        """The poller, started and ready (authenticated, first answer in) when returned."""
        proc = subprocess.Popen(self._argv({"do": "watch", "ids": ids, "victim": VICTIM,
                                            "move": move, "timeout": timeout}),
                                stdout=subprocess.PIPE, text=True, env=self.env)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            proc.kill()
            raise RuntimeError("the poller did not start")
        return proc

    def setup(self) -> None:
        image = self.lab.openstack("image", "create", "--file", str(build_image().path),
                                   "--disk-format", "qcow2", "--container-format", "bare",
                                   "atwill-guest", "-f", "json")
        flavor = self.lab.openstack("flavor", "create", "--ram", "256", "--disk", "1",
                                    "--vcpus", "1", FLAVOR, "-f", "json")
        network = self.lab.openstack("network", "create", NET, "-f", "json")
        self.lab.openstack("subnet", "create", "--network", NET, "--subnet-range", CIDR, SUBNET)
        self.ids = {"image": image["id"], "flavor": flavor["id"], "network": network["id"]}
        # Nova's default quota (10 instances, 20 cores) is below the spares' holders + N.
        project = self.lab.openstack("token", "issue", "-f", "json")["project_id"]
        self.lab.openstack("quota", "set", "--instances", "100", "--cores", "100", "--ram",
                           "102400", project)
        for node in SPARES:  # they stay: the guest image stays cached on both
            self.create(f"hold-{node}-", node, 1)

    def create(self, name: str, node: str, count: int) -> list[str]:
        made = self.sdk({"do": "create", "name": name, "zone": f"nova:{node}", "count": count,
                         "timeout": TIMEOUT, **self.ids})
        if set(made["status"].values()) != {"ACTIVE"}:
            raise RuntimeError(f"servers on {node} not ACTIVE: {made['status']}")
        ids: list[str] = made["ids"]
        return ids

    def delete(self, ids: list[str]) -> None:
        left = self.sdk({"do": "delete", "ids": ids, "timeout": TIMEOUT})["left"]
        if left:
            raise RuntimeError(f"servers not deleted in {TIMEOUT} s: {left}")

    def node(self, name: str) -> dict[str, Any]:
        shown: dict[str, Any] = json.loads(self.lab.atwill_ctl("node", "show", name).stdout)
        return shown

    def power_loss(self, count: int) -> dict[str, Any]:
        """One repetition: N servers on the victim, its power cut, until all run elsewhere."""
        ids = self.create(f"ha{count}-", VICTIM, count)
        watch = self.watcher(ids, True, TIMEOUT)
        cut = time.time()
        self.lab.kill_node(VICTIM)
        out, _ = watch.communicate(timeout=TIMEOUT + 60)
        polled = json.loads(out.strip().splitlines()[-1])
        sample = split(polled["samples"], cut, VICTIM)
        sample["events_in_order"] = all(events_in_order(e) for e in polled["events"].values())
        sample["hosts"] = sorted({s[2] for s in polled["samples"][-1][1]})
        self.restore(ids)
        return sample

    def restore(self, ids: list[str]) -> None:
        """The victim powered on again, its stale copies gone; the servers deleted."""
        self.lab.start_node(VICTIM)
        instances = Path(self.lab.host(VICTIM).state_dir) / "instances"
        self.lab.wait_for(lambda: self.node(VICTIM)["health"] == "up"
                          and not any((instances / i).exists() for i in ids),
                          TIMEOUT, f"{VICTIM} back, its stale copies destroyed")
        self.delete(ids)

    def lossy(self, count: int, seconds: float, delay: str, loss: str) -> dict[str, Any]:
        """Servers on the victim while its link is lossy: what the HA machinery did."""
        ids = self.create("lossy-", VICTIM, count)
        agent_log = Path(self.lab.host(VICTIM).state_dir) / "agent.log"
        marks = (self.ctl_log.stat().st_size, agent_log.stat().st_size)
        self.lab.set_wan(VICTIM, delay=delay, loss=loss)
        try:
            ping = self.lab.exec(naming.CONTROLLER, "ping", "-n", "-q", "-c", "20", "-i", "0.2",
                                 self.lab.host(VICTIM).ip, check=False, timeout=30).stdout
            watch = self.watcher(ids, False, seconds)
            out, _ = watch.communicate(timeout=seconds + 60)
        finally:
            self.lab.set_wan(VICTIM)
        samples = json.loads(out.strip().splitlines()[-1])["samples"]
        result: dict[str, Any] = log_counts(_tail(self.ctl_log, marks[0]),
                                            _tail(agent_log, marks[1]), VICTIM)
        result.update(
            seconds=seconds, delay=delay, loss=loss, servers=count, samples=len(samples),
            rtt_ms=_ping_avg(ping),
            not_up_samples=sum(any(s[3] != "UP" for s in servers) for _, servers in samples),
            moved=len({s[0] for _, servers in samples for s in servers if s[2] != VICTIM}),
            health_after=self.node(VICTIM)["health"])
        self.delete(ids)
        return result


def _tail(path: Path, offset: int) -> str:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _ping_avg(out: str) -> float | None:
    """ping's average round trip (ms), None if nothing came back."""
    match = re.search(r"= [\d.]+/([\d.]+)/", out)
    return float(match.group(1)) if match else None


def main(sizes: tuple[int, ...] = (1, 10), repeats: int = 3, lossy_s: float = 90,
         delay: str = "150ms", loss: str = "5%", lossy_servers: int = 2,
         budget_s: float = 720, rounds: int = 3, before_after: bool = True) -> Results:
    """Run everything (repetitions stop early past budget_s); print the table.

    before_after: the largest size again with the peers' confirmation off
    (ha_peer_confirm 0, the controller restarted), for a ratio from the same run."""
    results: Results = {"sizes": list(sizes), "repeats": repeats, "power_loss": {}}
    started = time.monotonic()
    with sigterm_unwinds(), temporary_lab(nodes=1 + len(SPARES), bare=True) as lab:
        bench = HaBench(lab)
        bench.setup()
        for count in sizes:
            results["power_loss"][str(count)] = _repeat(bench, count, repeats, started,
                                                        budget_s)
        if before_after:
            try:
                ha_rounds.set_controller(bench, ha_peer_confirm=0)
                before = {"power_loss": {str(sizes[-1]): _repeat(bench, sizes[-1], repeats,
                                                                  started, budget_s)}}
                ha_rounds.set_controller(bench, ha_peer_confirm=Settings().ha_peer_confirm)
                summarize(before)
                results["before"] = before
            except (RuntimeError, TimeoutError) as err:  # the figures above are kept
                results["before_error"] = str(err)
                print(f"before/after not measured: {err}", file=sys.stderr, flush=True)
        if rounds:
            try:
                results["partition_rounds"] = ha_rounds.partition_rounds(
                    bench, VICTIM, rounds, budget_s=rounds * 60)
            except (RuntimeError, TimeoutError) as err:
                results["rounds_error"] = str(err)
                print(f"partition rounds failed: {err}", file=sys.stderr, flush=True)
        results["lossy"] = bench.lossy(lossy_servers, lossy_s, delay, loss)
    results["elapsed_s"] = time.monotonic() - started
    summarize(results)
    print_report(results)
    return results


def _repeat(bench: HaBench, count: int, repeats: int, started: float,
            budget_s: float) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for _ in range(repeats):
        if runs and time.monotonic() - started > budget_s:
            break
        runs.append(bench.power_loss(count))
    return runs
