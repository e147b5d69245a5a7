"""The live-migration benchmark: atwill's live migration against the same QEMU migration
done by hand, in one two-node lab made and removed here.

For each guest size (MiB) and each case, idle (booted, doing nothing) and dirty (user
data rewriting a fifth of its memory in a loop, from random data: zero pages would
travel for free):
1. a server booted through the API, waited for on its console;
2. a port host (a namespace plugged into node1's bridge like a VM) pings it every 20 ms
   while `live_migrate_server` (openstacksdk, in the controller's namespace) moves it to
   the other node; timed until the API says ACTIVE there (polled every 50 ms). QEMU's own
   downtime, total time and bytes come from the source agent's log ("migration
   completed: ..."); the client's figure is the longest gap between two replies;
3. the baseline: a copy of that guest (its spec.json, hence the same user data) started
   by hand with the agent's qemu_argv on the node it moved to and migrated by QMP back
   to the node it left, over that node's overlay address (migration_hand.py).
Figures are printed as ratios to the baseline. Goals: QEMU downtime <= 300 ms idle,
total time <= 1.2x the hand-made migration.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ..guest.build import build_image
from ..lab import Lab, commands
from . import migration_figures as fig
from . import migration_hand
from .cluster import temporary_lab
from .network import NET, NetBench, _wait_ping
from .porthost import PortHost
from .signals import sigterm_unwinds

Results = dict[str, Any]
TIMEOUT = 300
READY = "atwill-guest ready:"
DIRTYING = "ATWILL-DIRTYING"
POLLER_NODE = "node1"


def dirty_script(mib: int) -> str:
    """User data: `mib` MiB of random data, then copied over and over (each copy writes
    new pages of the guest's memory)."""
    return ("#!/bin/sh\n"
            f"dd if=/dev/urandom of=/tmp/dirty-a bs=1048576 count={mib} 2>/dev/null\n"
            f"echo {DIRTYING} > /dev/console\n"
            "while true; do cat /tmp/dirty-a > /tmp/dirty-b; done\n")


# Runs in the controller's namespace: one live migration, timed until ACTIVE on target.
MIGRATE = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import openstack
call = json.loads(sys.argv[1])
c = openstack.connect(cloud="atwill")
s = c.compute.get_server(call["id"])
start = time.monotonic()
c.compute.live_migrate_server(s, host=call["target"], block_migration="auto")
returned = time.monotonic() - start
while time.monotonic() - start < call["timeout"]:
    s = c.compute.get_server(call["id"])
    if s.status == "ERROR" or (s.status == "ACTIVE" and s.compute_host == call["target"]):
        break
    time.sleep(0.05)
print(json.dumps({"status": s.status, "host": s.compute_host, "returned": returned,
                  "api_s": time.monotonic() - start}))
"""


class MigBench:
    def __init__(self, lab: Lab, stack: ExitStack, workdir: Path) -> None:
        self.lab, self.stack, self.workdir = lab, stack, workdir
        self.net = NetBench(lab)
        self.poller: PortHost | None = None
        self.accel = "unknown"  # the guests' accelerator, as the agent chose it

    def setup(self, sizes: tuple[int, ...]) -> None:
        self.net.setup()
        self.image = self.lab.openstack(
            "image", "create", "--file", str(build_image().path), "--disk-format", "qcow2",
            "--container-format", "bare", "bench-guest", "-f", "json")
        for size in sizes:
            self.lab.openstack("flavor", "create", "--ram", str(size), "--disk", "1",
                               "--vcpus", "1", f"bench.m{size}")
        self.poller_error: str | None = None

    def ensure_poller(self) -> None:
        """The polling client, made once a server runs (so the network is on its node);
        without one the bench goes on with QEMU's figures alone, and says why."""
        if self.poller is not None or self.poller_error is not None:
            return
        try:
            host, _, times = self.net.port_host(self.stack, POLLER_NODE)
        except (TimeoutError, RuntimeError) as exc:
            self.poller_error = str(exc)
            return
        if "failure" in times:
            self.poller_error = times["failure"]
            return
        self.poller = host

    def boot(self, name: str, size: int, script: str | None) -> dict[str, Any]:
        extra: list[str] = []
        if script is not None:
            path = self.workdir / f"{name}.sh"
            path.write_text(script)
            extra = ["--user-data", str(path)]
        server: dict[str, Any] = self.lab.openstack(
            "server", "create", "--flavor", f"bench.m{size}", "--image", self.image["id"],
            "--network", NET, *extra, "--wait", name, "-f", "json", timeout=TIMEOUT)
        self.wait_console(server["id"], DIRTYING if script else READY)
        shown = self.lab.openstack("server", "show", server["id"], "-f", "json")
        match = re.search(r"(\d+\.\d+\.\d+\.\d+)", json.dumps(shown["addresses"]))
        if match is None:
            raise RuntimeError(f"{name} has no address: {shown['addresses']}")
        return {"id": server["id"], "host": shown["OS-EXT-SRV-ATTR:host"],
                "ip": match.group(1)}

    def wait_console(self, server: str, text: str, timeout: float = 240) -> None:
        deadline, seen = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            seen = self.lab.openstack("console", "log", "show", server, timeout=60)
            if text in seen:
                return
            time.sleep(1)
        raise TimeoutError(f"{server}: no {text!r} on its console:\n{seen[-1500:]}")

    def agent_log(self, node: str) -> str:
        path = Path(self.lab.host(node).state_dir) / "agent.log"
        return path.read_text(errors="replace")

    def migrate(self, server: dict[str, Any], target: str) -> dict[str, Any]:
        """The migration through the API, polled by the client; QEMU's figures from
        the source's log."""
        self.ensure_poller()
        ping = None
        # A file, not a pipe read at the end: ping blocks once a pipe's 64 KiB are full
        # (~840 replies, 17 s), and the gap of a longer migration went unseen.
        replies = self.workdir / f"ping-{server['id']}.txt"
        if self.poller is not None:
            _wait_ping(self.poller, server["ip"])
            with replies.open("w") as out_file:
                ping = subprocess.Popen(self.poller.ns.argv(
                    ["ping", "-D", "-n", "-i", "0.02", "-W", "1", "-w", str(TIMEOUT),
                     server["ip"]]), stdout=out_file, stderr=subprocess.STDOUT)
        before = len(fig.qemu_completed(self.agent_log(server["host"])))
        try:
            ctl = self.lab.state.controller
            env = dict(os.environ,
                       **commands.openstack_env(Path(ctl.state_dir) / "clouds.yaml"))
            out = self.lab.exec(ctl.name, sys.executable, "-c", MIGRATE, json.dumps(
                {"id": server["id"], "target": target, "timeout": TIMEOUT}),
                timeout=TIMEOUT + 60, env=env).stdout
            api = json.loads(out.strip().splitlines()[-1])
            if ping is not None:
                time.sleep(1)  # replies after the switch-over, so a gap at the end is seen
        finally:
            text = ""
            if ping is not None:
                ping.send_signal(signal.SIGINT)
                ping.wait(timeout=10)
                text = replies.read_text(errors="replace")
        if api["status"] != "ACTIVE" or api["host"] != target:
            raise RuntimeError(f"migration of {server['id']}: {api}")
        figures = self.lab.wait_for(
            lambda: fig.qemu_completed(self.agent_log(server["host"]))[before:], 30,
            "QEMU's figures in the source's agent log")
        return dict(figures[-1], api_s=api["api_s"], api_returned_s=api["returned"],
                    gap_ms=fig.longest_gap_ms(fig.replies(text)), replies=len(
                        fig.replies(text)))

    def hand(self, server: dict[str, Any], target: str, marker: str,
             script: str | None) -> dict[str, Any]:
        """The baseline, on the server's new node (its spec.json is there now) to the
        node it left."""
        spec = (Path(self.lab.host(target).state_dir) / "instances" / server["id"]
                / "spec.json")
        self.accel = json.loads(spec.read_text()).get("accel", "unknown")
        address = next(n["overlay_ip"] for n in self.lab.node_list()
                       if n["name"] == server["host"])
        return migration_hand.run(self.lab, spec, target, server["host"], address,
                                  49152 + os.getpid() % 1000,
                                  self.workdir / f"hand-{server['id']}", marker, script)

    def case(self, name: str, size: int, script: str | None) -> dict[str, Any]:
        server = self.boot(name, size, script)
        target = "node2" if server["host"] == "node1" else "node1"
        try:
            run = self.migrate(server, target)
            hand = self.hand(server, target, DIRTYING if script else READY, script)
        finally:
            self.lab.openstack("server", "delete", "--wait", server["id"], timeout=TIMEOUT)
        return {"atwill": fig.with_ratios(run, hand), "hand": hand,
                "path": f"{server['host']}->{target} (hand: {target}->{server['host']})"}


def main(sizes: tuple[int, ...] = (256,), budget: float = 1500) -> Results:
    """Run everything within about `budget` seconds; print the table, return figures."""
    results: Results = {"sizes": list(sizes), "cases": {}, "skipped": {}}
    started = time.monotonic()
    with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="atwill-bench-") as tmp:
        with temporary_lab(nodes=2) as lab, ExitStack() as stack:
            bench = MigBench(lab, stack, Path(tmp))
            bench.setup(sizes)
            for size in sizes:
                for kind, script in (("idle", None), ("dirty", dirty_script(size // 5))):
                    name = f"{kind}-{size}"
                    if time.monotonic() - started > budget:
                        results["skipped"][name] = f"over the {budget:g} s budget"
                        continue
                    results["cases"][name] = bench.case(name, size, script)
                    print(name, json.dumps(results["cases"][name]), file=sys.stderr)
            results["accel"] = bench.accel
            results["poller_error"] = bench.poller_error
    print_report(results)
    return results


def print_report(r: Results) -> None:
    rows: dict[str, dict[str, Any]] = {}
    for name, case in r["cases"].items():
        rows[name] = case["atwill"]
        rows[name + " hand"] = case["hand"]
    print(f"\nLive migration, atwill vs the same QEMU migration by hand (node1<->node2 over "
          f"the overlay; accelerator: {r.get('accel')})")
    print(fig.table(rows))
    if r.get("poller_error"):
        print(f"  no polling client: {r['poller_error']}")
    for name, reason in r["skipped"].items():
        print(f"  skipped {name}: {reason}")
    print("  down: QEMU's downtime; gap: the longest gap in replies to a ping every 20 ms "
          "from a port host on node1; API s: live-migrate call until ACTIVE on the target; "
          "x: ratio to the hand-made migration")
