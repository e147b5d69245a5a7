"""Fleet: SIMULATED nodes heartbeating at 1 Hz and long-polling a real controller.

The nodes are *simulated*: no agent, no QEMU. Each joined with its own key and certificate
(a real join token, a real CSR) and then speaks the real cluster API over HTTPS with mutual
TLS, exactly as an agent does: `POST /cluster/v1/nodes/{id}/heartbeat` once a second
(random phase) from a few generator processes (fleet_beats.py: one persistent TLS
connection per node, pre-serialized request bytes, no HTTP client library), and
`GET /cluster/v1/nodes/{id}/desired?after=REV` held open (httpx, in this process). The
controller is a real `atwill serve` on a fresh PostgreSQL database (dropped at the end).

Figures, each from its own phase of one run:
1. heartbeats only, once the fleet beats steadily after the controller's start (settle():
   95 % of its rate answered, p99 under 1 s; the seconds it took are printed, None when
   it never did within 60 s): controller CPU per heartbeat (utime+stime from /proc of every
   process of the controller's process group, and apart, of the PostgreSQL backends
   serving its database), heartbeats/s achieved, p50/p99 latency;
2. the same with every node's long-poll open (what an idle fleet costs);
3. a security-group rule added to a group whose ports are bound to `--concerned`
   nodes: the time until each of those nodes' long-polls returns a desired state
   with the rule (from the start of the API call), and how many *other* nodes'
   long-polls it woke (returned with a new revision within 5 s).

The load generator shares the machine: its own CPU (beat processes and this one) per beat
and the heartbeat rate it reached are printed, so a run where it, not the controller, was
the limit says so. Each run measures the fleet twice, from a restarted controller each
time, before and after (fleet_report.COMPARISONS): `heartbeat` (default) every beat in full
(ATWILL_HEARTBEAT_PATH=full) / the lean path (cluster/liveness.py); `revisions` one
cluster revision (ATWILL_NODE_REVISIONS=off) / per-node revisions; it prints after / before.
Figures (2026-12-07, 2 vCPUs shared with other sessions' tests, one controller worker):
generator before (httpx coroutines) 1.16 ms CPU per beat (72 % of a core at 624 beats/s),
now 0.18 ms at 500 nodes (one process) and ~0.10-0.16 ms at 2,000 (two). 500 nodes,
heartbeats only, lean: 0.64 ms controller CPU per beat at 495.5 beats/s (all of them),
p50 1.3 ms, p99 183 ms, steady 11 s after the start (full path in the same run: 5.50 ms,
184 beats/s, saturated); the code before this change, same machine an hour earlier:
0.94 ms at 624 beats/s, p99 7.1 s (never steady: the generator's catch-up bursts).
2,000 nodes (2 generator processes), heartbeats only: lean 0.72 ms per beat at 1,405 of
2,000 beats/s, 100 % of a core, p99 0.94 s, steady (by settle()'s p99 test) 45 s after the
start; full path 5.83 ms at 170 beats/s. One worker saturates: when its flush falls behind
the 0.4 s guard every beat goes full, late nodes go suspect and full (a spiral).
With the long-polls open both saturate (each node marked down rebuilds every node's
desired state).
Why beats fell off the lean path (2026-12-07, --compare tree, the commit before with a
counter of each reason): at 2,000 nodes the flush was behind (cluster/liveness.behind)
for ~90 % of the beats not taken lean, the 30 s refresh for a few (0-120 per 5 s), the
rest suspect nodes and inventory; the full passes that caused took the GIL from the flush
thread (flushes of ~200 rows: ~40 ms of CPU, ~200 ms of wall time, up to 0.9 s), a
spiral. Held beats and the flush-side check (liveness.py) in the same run, heartbeats
only (ATWILL_BENCH_FLEET_PHASES=heartbeats), 2,000 nodes, 20 s: 268 -> 521 beats/s
(1.94x) at 3.69 -> 1.88 ms controller CPU a beat (0.51x), both still saturated on the
shared 2-vCPU machine (the old tree reached 1,405 beats/s there earlier that day) and
neither steady within 60 s. In process (no
server, 2,000 nodes on PostgreSQL, flushes of 200 beats): 114 -> 101 us of CPU a beat
(0.88x): the flush, not the lane, is now the lean path's largest cost.
Earlier (revisions, 2026-12-06): 200 nodes with the long-polls open 3.39x
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ..agent.client import tls_context
from ..devcloud import Cloud, fresh_database
from ..pki import make_key_and_csr
from .fleet_beats import INVENTORY, Generator, Spec
from .fleet_report import COMPARISONS, MODES, heartbeats_only, ratios, report, switched

TICKS = os.sysconf("SC_CLK_TCK")
WAKE_WINDOW = 5.0


@dataclass
class SimNode:
    """One simulated node: its id and name, its certificate and key (files), and the TLS
    context with them for its long-poll."""

    id: str
    name: str
    tls: ssl.SSLContext
    cert: Path
    key: Path
    client: httpx.AsyncClient | None = None


@dataclass
class Stats:
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
                                 tls_context(Path(cloud.cacert), cert, key_path), cert,
                                 key_path))
    return nodes


@contextlib.contextmanager
def joined_cloud(url: str | None, workers: int, nodes: int
                 ) -> Iterator[tuple[Cloud, list[SimNode], float]]:
    """A dev cloud (on url, SQLite if None) started with `nodes` simulated nodes joined,
    the seconds the joins took; destroyed on exit. The open-files limit is raised first:
    two connections per node."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as tmp:
        cloud = Cloud(database_url=url, workers=workers)
        try:
            cloud.init()
            cloud.start()
            began = time.monotonic()
            sims = join(cloud, nodes, Path(tmp))
            yield cloud, sims, time.monotonic() - began
        finally:
            cloud.destroy()


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


async def measure(cloud: Cloud, generator: Generator, seconds: float,
                  admin_url: str, database_url: str) -> dict[str, float]:
    """Controller and PostgreSQL CPU over seconds of the fleet's traffic, per heartbeat;
    the generator's (its beat processes and this one, which holds the long-polls) too."""
    assert cloud.proc is not None
    pids, backends = group_pids(cloud.proc.pid), backend_pids(admin_url, database_url)
    ctl0, pg0, me0, t0 = cpu_seconds(pids), cpu_seconds(backends), own_cpu(), time.monotonic()
    generator.start()
    await asyncio.sleep(seconds)
    latencies, errors, beaters = await asyncio.to_thread(generator.stop)
    elapsed = time.monotonic() - t0
    ctl, pg = cpu_seconds(pids) - ctl0, cpu_seconds(backends) - pg0
    me = own_cpu() - me0 + beaters
    beats = max(1, len(latencies))
    return {"heartbeats_per_s": round(len(latencies) / elapsed, 1),
            "errors": errors,
            "controller_cpu_core_share": round(ctl / elapsed, 3),
            "controller_cpu_ms_per_heartbeat": round(1000 * ctl / beats, 3),
            "postgres_cpu_core_share": round(pg / elapsed, 3),
            "postgres_cpu_ms_per_heartbeat": round(1000 * pg / beats, 3),
            "latency_p50_ms": _ms(quantile(latencies, 0.5)),
            "latency_p99_ms": _ms(quantile(latencies, 0.99)),
            "generator_cpu_core_share": round(me / elapsed, 3),
            "generator_cpu_ms_per_heartbeat": round(1000 * me / beats, 3),
            "generator_processes": len(generator.procs)}


async def settle(generator: Generator, nodes: int, probe: float = 2.0,
                 limit: float = 60.0) -> float | None:
    """Seconds from the start until the fleet beats steadily (over a probe, at least 95 %
    of its rate answered, p99 under a second, no error); None if not within limit."""
    began = time.monotonic()
    await asyncio.sleep(5)
    while time.monotonic() - began < limit:
        generator.start()
        await asyncio.sleep(probe)
        latencies, errors, _ = await asyncio.to_thread(generator.stop)
        p99 = quantile(latencies, 0.99)
        if not errors and len(latencies) >= 0.95 * nodes * probe and p99 is not None \
                and p99 < 1.0:
            return round(time.monotonic() - began, 1)
    return None


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
              admin_url: str, database_url: str, processes: int) -> dict[str, Any]:
    stats, stop = Stats(), asyncio.Event()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    for node in nodes:  # the long-polls' (the beats have their own processes)
        node.client = httpx.AsyncClient(base_url=cloud.url, verify=node.tls, limits=limits,
                                        timeout=30)
    generator = Generator([Spec(n.id, str(n.cert), str(n.key)) for n in nodes], "127.0.0.1",
                          cloud.port, cloud.cacert, processes)
    tasks: list[asyncio.Task] = []
    ca = ssl.create_default_context(cafile=cloud.cacert)
    admin = httpx.AsyncClient(base_url=cloud.url, verify=ca, timeout=60,
                              headers={"X-Auth-Token": cloud.token()})
    try:
        # Every node's first beat (its endpoint is new) bumps the revision and goes the full
        # way: let that storm pass before measuring, as in a fleet that is already running.
        settled = await settle(generator, len(nodes))
        results: dict[str, Any] = {"nodes": len(nodes)}
        results["heartbeats_only"] = await measure(cloud, generator, seconds, admin_url,
                                                   database_url)
        results["heartbeats_only"]["settled_after_s"] = settled
        if heartbeats_only():
            return results
        tasks += [asyncio.create_task(poll(n, stop, stats)) for n in nodes]
        await asyncio.sleep(5)
        await quiet(stats, 2.0)
        results["with_long_polls"] = await measure(cloud, generator, seconds, admin_url,
                                                   database_url)
        try:
            results["security_group_change"] = await sg_change(admin, nodes, stats,
                                                               concerned)
        except httpx.HTTPError as exc:  # a saturated controller: the figures above stand
            results["security_group_change"] = {"failed": f"{type(exc).__name__}: {exc}"}
        return results
    finally:
        stop.set()
        await asyncio.to_thread(generator.close)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for node in nodes:
            if node.client is not None:
                await node.client.aclose()
        await admin.aclose()


def main(nodes: int = 50, seconds: float = 10.0, concerned: int = 50, workers: int = 1,
         database_url: str | None = None, compare: str = "heartbeat",
         generators: int | None = None) -> dict[str, Any]:
    """The fleet measured twice on one database and one set of joined nodes, before and
    after (fleet_report.COMPARISONS): the heartbeat path (ATWILL_HEARTBEAT_PATH full /
    lean) or the revisions (ATWILL_NODE_REVISIONS off / on)."""
    if compare not in COMPARISONS:
        raise SystemExit(f"bench fleet compares one of {', '.join(COMPARISONS)}")
    admin_url = database_url or os.environ.get("ATWILL_TEST_PG_URL")
    if not admin_url:
        raise SystemExit("bench fleet needs PostgreSQL: --database-url or ATWILL_TEST_PG_URL "
                         "(a URL allowed to create databases)")
    concerned = min(concerned, max(1, nodes // 2))
    processes = generators or max(1, min(os.cpu_count() or 1, -(-nodes // 1000)))
    results: dict[str, Any] = {"nodes": nodes, "workers": workers, "compare": compare,
                               "generators": processes}
    with fresh_database(admin_url, "atwill_fleet") as url, \
            joined_cloud(url, workers, nodes) as (cloud, sims, joined_s):
        print(f"{nodes} SIMULATED nodes joined in {joined_s:.1f} s "
              f"(controller: {workers} worker(s), PostgreSQL)", flush=True)
        cloud.stop()
        for mode in MODES:  # each from a fresh start, the nodes silent since the last
            with switched(compare, mode):
                cloud.start()
            results[mode] = asyncio.run(run(cloud, sims, seconds, concerned, admin_url,
                                            url, processes))
            cloud.stop()
    results["ratios"] = ratios(results[MODES[0]], results[MODES[1]])
    report(results)
    return results
