"""Fleet: SIMULATED nodes heartbeating at 1 Hz and long-polling a real controller.

The nodes are *simulated*: no agent, no QEMU — each is a coroutine of this process
that joined with its own key and certificate (a real join token, a real CSR) and then
speaks the real cluster API over HTTPS with mutual TLS, exactly as an agent does:
`POST /cluster/v1/nodes/{id}/heartbeat` once a second (random phase) and
`GET /cluster/v1/nodes/{id}/desired?after=REV` held open. The controller is a real
`atwill serve` on a fresh PostgreSQL database (dropped at the end).

Figures, each from its own phase of one run:
1. heartbeats only: controller CPU per heartbeat (utime+stime from /proc of every
   process of the controller's process group, and apart, of the PostgreSQL backends
   serving its database), heartbeats/s achieved, p50/p99 latency;
2. the same with every node's long-poll open (what an idle fleet costs);
3. a security-group rule added to a group whose ports are bound to `--concerned`
   nodes: the time until each of those nodes' long-polls returns a desired state
   with the rule (from the start of the API call), and how many *other* nodes'
   long-polls it woke (returned with a new revision within 5 s).

The load generator shares the machine: its own CPU and the heartbeat rate it reached
are printed, so a run where it, not the controller, was the limit says so.
Each run measures the fleet twice, from a restarted controller each time, before and after
(fleet_report.COMPARISONS): `heartbeat` (default) every beat in full
(ATWILL_HEARTBEAT_PATH=full) / the lean path (cluster/liveness.py); `revisions` one
cluster revision (ATWILL_NODE_REVISIONS=off) / per-node revisions; it prints after / before.
Figures (2026-12-07, 2 vCPUs shared with other sessions, one controller worker, heartbeat):
500 nodes, heartbeats only: 0.45 / 4.82 ms controller CPU per beat (0.09x), 601.8 / 164.8
beats/s, PostgreSQL 0.07 / 0.93 ms per beat. 2000 nodes: 1.93 / 6.37 ms (0.30x), 401 / 120
beats/s, still saturated (every node's first beats after the start take the full path, late
nodes are marked down and go the full way again; the generator itself used half a core).
With the long-polls open both saturate (each node marked down rebuilds every node's
desired state). Earlier (revisions, 2026-12-06): 200 nodes with the long-polls open 3.39x
the beats/s at 0.29x the CPU per beat; a security-group rule for 50 nodes woke 0 of the
150 others (118 before). Goal (issue 19): 2000 nodes at < 50 % of one core, a targeted
change in < 1 s waking no other node — waking no other met, the rest missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import resource
import ssl
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ..agent.client import tls_context
from ..devcloud import Cloud, fresh_database
from ..pki import make_key_and_csr
from .fleet_report import COMPARISONS, MODES, ratios, report, switched

INVENTORY = {"vcpus": 8, "memory_mb": 16384, "disk_gb": 200, "arch": "x86_64",
             "cpu_model": "simulated", "accelerator": "tcg"}
TICKS = os.sysconf("SC_CLK_TCK")
WAKE_WINDOW = 5.0


@dataclass
class SimNode:
    """One simulated node: its id and name, and the TLS context with its certificate."""

    id: str
    name: str
    tls: ssl.SSLContext
    client: httpx.AsyncClient | None = None


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    # (monotonic time, node name, new revision?, rule seen?) per long-poll return
    polls: list[tuple[float, str, bool, bool]] = field(default_factory=list)
    marker: re.Pattern[str] | None = None


def join(cloud: Cloud, count: int, tmp: Path) -> list[SimNode]:
    """count nodes joined with one multi-use token, each with its own key and cert."""
    token = json.loads(cloud.atwill("token", "create", "--uses", str(count), "--ttl", "2h",
                                    "--json").stdout)["token"]
    nodes = []
    with cloud.http() as client:
        for index in range(count):
            name = f"simulated-{index:04d}"
            key, csr = make_key_and_csr(name)
            resp = client.post("/cluster/v1/join", json={
                "token": token, "name": name, "csr": csr.decode(), "inventory": INVENTORY})
            resp.raise_for_status()
            cert, key_path = tmp / f"{name}.pem", tmp / f"{name}-key.pem"
            cert.write_text(resp.json()["certificate"])
            key_path.write_bytes(key)
            nodes.append(SimNode(resp.json()["node_id"], name,
                                 tls_context(Path(cloud.cacert), cert, key_path)))
    return nodes


async def beat(node: SimNode, stop: asyncio.Event, stats: Stats, measuring: list[bool]
               ) -> None:
    """A heartbeat each second, in a random phase, the inventory in the first only."""
    assert node.client is not None
    await asyncio.sleep(random.random())
    started, first = time.monotonic(), True
    tick = 0
    while not stop.is_set():
        body: dict[str, Any] = {"overlay": {}, "running_vms": 0, "instances": {},
                                "host": {"uptime_s": round(time.monotonic() - started)}}
        if first:
            body["inventory"] = INVENTORY
        sent = time.monotonic()
        try:
            resp = await node.client.post(f"/cluster/v1/nodes/{node.id}/heartbeat", json=body)
            ok = resp.status_code == 200
        except httpx.HTTPError:
            ok = False
        if measuring[0] and ok:
            stats.latencies.append(time.monotonic() - sent)
        elif measuring[0]:
            stats.errors += 1
        first = False
        tick += 1
        await asyncio.sleep(max(0.0, started + tick - time.monotonic()))


async def poll(node: SimNode, stop: asyncio.Event, stats: Stats) -> None:
    """The agent's long-poll: the desired state newer than the last one seen."""
    assert node.client is not None
    after = -1
    while not stop.is_set():
        try:
            resp = await node.client.get(f"/cluster/v1/nodes/{node.id}/desired",
                                         params={"after": after, "wait": 25}, timeout=40)
        except httpx.HTTPError:
            await asyncio.sleep(1)
            continue
        text = resp.text
        revision = int(re.search(r'"revision":\s*(\d+)', text).group(1))  # type: ignore[union-attr]
        seen = bool(stats.marker and stats.marker.search(text))
        stats.polls.append((time.monotonic(), node.name, after >= 0 and revision > after,
                            seen))
        after = revision


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def group_pids(pgid: int) -> list[int]:
    """Every process of the controller's process group (its workers included)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:
                    out.append(int(entry.name))
    return out


def backend_pids(admin_url: str, database_url: str) -> list[int]:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))]


def quantile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(cloud: Cloud, stats: Stats, measuring: list[bool], seconds: float,
                  admin_url: str, database_url: str) -> dict[str, float]:
    """Controller and PostgreSQL CPU over seconds of the fleet's traffic, per heartbeat."""
    assert cloud.proc is not None
    pids, backends = group_pids(cloud.proc.pid), backend_pids(admin_url, database_url)
    ctl0, pg0, me0, t0 = cpu_seconds(pids), cpu_seconds(backends), own_cpu(), time.monotonic()
    stats.latencies.clear()
    stats.errors = 0
    measuring[0] = True
    await asyncio.sleep(seconds)
    measuring[0] = False
    elapsed = time.monotonic() - t0
    ctl, pg, me = cpu_seconds(pids) - ctl0, cpu_seconds(backends) - pg0, own_cpu() - me0
    beats = max(1, len(stats.latencies))
    return {"heartbeats_per_s": round(len(stats.latencies) / elapsed, 1),
            "errors": stats.errors,
            "controller_cpu_core_share": round(ctl / elapsed, 3),
            "controller_cpu_ms_per_heartbeat": round(1000 * ctl / beats, 3),
            "postgres_cpu_core_share": round(pg / elapsed, 3),
            "postgres_cpu_ms_per_heartbeat": round(1000 * pg / beats, 3),
            "latency_p50_ms": _ms(quantile(stats.latencies, 0.5)),
            "latency_p99_ms": _ms(quantile(stats.latencies, 0.99)),
            "generator_cpu_core_share": round(me / elapsed, 3)}


async def quiet(stats: Stats, calm: float, limit: float = 120.0) -> None:
    """Until no long-poll has returned a new revision for calm seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        news = [t for t, _, new, _ in stats.polls if new]
        if not news or time.monotonic() - news[-1] >= calm:
            return
        await asyncio.sleep(0.2)


async def sg_change(admin: httpx.AsyncClient, nodes: list[SimNode], stats: Stats,
                    concerned: int) -> dict[str, Any]:
    """A rule added to a group whose ports are bound to the first `concerned` nodes."""
    net = (await admin.post("/network/v2.0/networks", json={"network": {
        "name": "fleet-bench"}})).json()["network"]["id"]
    group = (await admin.post("/network/v2.0/security-groups", json={"security_group": {
        "name": "fleet-bench"}})).json()["security_group"]["id"]
    ports = [{"network_id": net, "binding:host_id": n.name, "security_groups": [group],
              "device_owner": "compute:nova", "device_id": str(uuid.uuid4())}
             for n in nodes[:concerned]]
    (await admin.post("/network/v2.0/ports", json={"ports": ports})).raise_for_status()
    await quiet(stats, 3.0)
    port = random.randrange(20000, 60000)
    stats.marker = re.compile(rf'"port_range_min":\s*{port}\b')
    mark, started = len(stats.polls), time.monotonic()
    resp = await admin.post("/network/v2.0/security-group-rules", json={
        "security_group_rule": {"security_group_id": group, "direction": "ingress",
                                "protocol": "tcp", "port_range_min": port,
                                "port_range_max": port}})
    resp.raise_for_status()
    api = time.monotonic() - started
    await asyncio.sleep(WAKE_WINDOW)
    names = {n.name for n in nodes[:concerned]}
    reached: dict[str, float] = {}
    woken: set[str] = set()
    for at, name, new, seen in stats.polls[mark:]:
        if name in names and seen:
            reached.setdefault(name, at - started)
        elif new and name not in names and at - started <= WAKE_WINDOW:
            woken.add(name)
    times = sorted(reached.values())
    return {"concerned_nodes": concerned, "reached": len(reached),
            "reach_median_s": round(times[len(times) // 2], 3) if times else None,
            "reach_max_s": round(times[-1], 3) if times else None,
            "api_call_s": round(api, 3), "other_nodes": len(nodes) - concerned,
            "other_nodes_woken": len(woken)}


async def run(cloud: Cloud, nodes: list[SimNode], seconds: float, concerned: int,
              admin_url: str, database_url: str) -> dict[str, Any]:
    stats, measuring, stop = Stats(), [False], asyncio.Event()
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    for node in nodes:
        node.client = httpx.AsyncClient(base_url=cloud.url, verify=node.tls, limits=limits,
                                        timeout=30)
    tasks = [asyncio.create_task(beat(n, stop, stats, measuring)) for n in nodes]
    ca = ssl.create_default_context(cafile=cloud.cacert)
    admin = httpx.AsyncClient(base_url=cloud.url, verify=ca, timeout=60,
                              headers={"X-Auth-Token": cloud.token()})
    try:
        # Every node's first beat (its endpoint is new) bumps the revision: let those
        # pass before any long-poll is open, as in a fleet that is already running.
        await asyncio.sleep(5)
        results: dict[str, Any] = {"nodes": len(nodes)}
        results["heartbeats_only"] = await measure(cloud, stats, measuring, seconds,
                                                   admin_url, database_url)
        tasks += [asyncio.create_task(poll(n, stop, stats)) for n in nodes]
        await asyncio.sleep(5)
        await quiet(stats, 2.0)
        results["with_long_polls"] = await measure(cloud, stats, measuring, seconds,
                                                   admin_url, database_url)
        results["security_group_change"] = await sg_change(admin, nodes, stats, concerned)
        return results
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for node in nodes:
            if node.client is not None:
                await node.client.aclose()
        await admin.aclose()


def main(nodes: int = 50, seconds: float = 10.0, concerned: int = 50, workers: int = 1,
         database_url: str | None = None, compare: str = "heartbeat") -> dict[str, Any]:
    """The fleet measured twice on one database and one set of joined nodes, before and
    after (fleet_report.COMPARISONS): the heartbeat path (ATWILL_HEARTBEAT_PATH full /
    lean) or the revisions (ATWILL_NODE_REVISIONS off / on)."""
    if compare not in COMPARISONS:
        raise SystemExit(f"bench fleet compares one of {', '.join(COMPARISONS)}")
    admin_url = database_url or os.environ.get("ATWILL_TEST_PG_URL")
    if not admin_url:
        raise SystemExit("bench fleet needs PostgreSQL: --database-url or ATWILL_TEST_PG_URL "
                         "(a URL allowed to create databases)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # two connections per node
    concerned = min(concerned, max(1, nodes // 2))
    results: dict[str, Any] = {"nodes": nodes, "workers": workers, "compare": compare}
    with fresh_database(admin_url, "atwill_fleet") as url, tempfile.TemporaryDirectory() as tmp:
        cloud = Cloud(database_url=url, workers=workers)
        try:
            cloud.init()
            cloud.start()
            began = time.monotonic()
            sims = join(cloud, nodes, Path(tmp))
            print(f"{nodes} SIMULATED nodes joined in {time.monotonic() - began:.1f} s "
                  f"(controller: {workers} worker(s), PostgreSQL)", flush=True)
            cloud.stop()
            for mode in MODES:  # each from a fresh start, the nodes silent since the last
                with switched(compare, mode):
                    cloud.start()
                results[mode] = asyncio.run(run(cloud, sims, seconds, concerned, admin_url,
                                                url))
                cloud.stop()
        finally:
            cloud.destroy()
    results["ratios"] = ratios(results[MODES[0]], results[MODES[1]])
    report(results)
    return results
