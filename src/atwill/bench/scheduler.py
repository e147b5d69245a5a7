"""Scheduler placements per second against 1,000 simulated nodes, with real claims.

Besides the rate it prints the CPU each placement cost the placing processes
(client_cpu_ms) and, on a PostgreSQL on this machine, its backends (server_cpu_ms): on
shared, loaded cores the rate mostly says how long the processes waited for one.

The nodes are *simulated*: rows in the database with an inventory and no agent
behind them (allowed for scale benchmarks only). Each placement runs exactly what
a server create runs: load the hosts, filter, weigh, and claim with the
conditional UPDATE in its own transaction. At the end, no node may be overbooked.
With --workers, several processes place at once (a controller's worker processes), so
their claims race for the same nodes.

2026-12-07 07:22 UTC, 1,000 placements per round, nice 19, load ~2, before = f15e22c run
from its own tree, after = PostgreSQL's one-statement placement (placement_one: shortlist,
filters, weighers and SKIP LOCKED claim in one UPDATE … RETURNING; 6 round trips instead
of 7), alternating: PostgreSQL one process 342 / 342 / 315 → 450 / 444 / 401 placements/s
(1.27–1.32×), client CPU 2.0–2.2 → 1.4–1.5 ms, server 0.7–0.8 → 0.6–0.8 ms; two
processes 682 / 689 → 730 / 782/s (1.07×, 1.13×), client CPU 1.9–2.0 → 1.6 ms; SQLite
(unchanged path) 693 → 734/s. All placed, no node overbooked. What is left of a
placement's client CPU on PostgreSQL (py-spy): ~40 % the ORM's INSERT of the server row
and its usage event, ~30 % the commit's flush (the server row's UPDATE) and COMMIT,
~20 % the placement statement itself (psycopg builds the result's description per row).

2026-12-07 10:39 UTC, same flags, load ~1.1–1.5, before = e141255's tree, alternating.
Each placement's instance row and create event are now written by servers/new_instance
(one statement, no flush, the row as one JSON parameter so that psycopg caches the
query's conversion; --orm-insert keeps the ORM's add and flush, as the API's create,
builds.py, still does), and a first placement's claim also gives the instance its node
(placement_one.claim_placing: no UPDATE at commit): 4 round trips instead of 6.
PostgreSQL one process 477 / 482 / 460 → 657 / 683 / 685 placements/s (1.38–1.49×),
client CPU 1.3–1.4 → 0.8 ms, server 0.6 → 0.5–0.6 ms; with the ORM's insert (the claim's
statement alone) 533 / 529 / 537/s (1.10–1.17×); two processes 812 → 1,298/s (1.60×);
SQLite (the new insert; its placement path unchanged) 807 / 782 → 820 / 815/s
(1.02–1.04×). All placed, no node overbooked. Left per placement on PostgreSQL: BEGIN
is its own round trip (psycopg), the claim statement's ~0.2 ms client CPU, the commit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from ..config import load
from ..controller.db.models import Instance, Node
from ..controller.db.session import Database, migrate
from ..controller.servers import new_instance, placement
from ..core import scheduler
from ..devcloud import fresh_database


def _nodes(db: Database, count: int) -> None:
    with db.session() as session:
        for index in range(count):
            session.add(Node(name=f"simulated-{index:04d}", state="up", vcpus=8,
                             memory_mb=16384, local_gb=200, inventory={"arch": "x86_64"}))
    if db.engine.dialect.name == "postgresql":
        # What autovacuum does minutes after a thousand nodes join: without statistics
        # the planner takes the empty-looking table for one row and sorts every node
        # instead of reading the shortlist from the free-RAM index.
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE nodes"))
            conn.commit()


def _place(db: Database, settings, req: scheduler.Request, orm_insert: bool = False) -> bool:
    with db.session() as session:
        inst = Instance(id=str(uuid.uuid4()), name="bench", project_id="p", user_id="u",
                        vcpus=req.vcpus, memory_mb=req.memory_mb, disk_gb=req.disk_gb)
        if orm_insert:  # as the API's create still does (builds.py: add, flush)
            session.add(inst)
            session.flush()
        else:
            new_instance.insert(session, inst)
        try:
            placement.place(session, settings, inst, req)
            return True
        except scheduler.NoValidHost:
            session.delete(inst)
            return False


def _overbooked(db: Database) -> int:
    with db.session() as session:
        bad = 0
        for node in session.scalars(select(Node)):
            cpu, ram, disk = placement.ratios(node)
            if (node.vcpus_used > node.vcpus * cpu or node.memory_mb_used > node.memory_mb * ram
                    or node.local_gb_used > node.local_gb * disk):
                bad += 1
        return bad


def _server_cpu(db: Database) -> float | None:
    """CPU seconds of the PostgreSQL backend serving this engine's pooled connection, when
    it runs on this machine (its /proc entry readable); None otherwise and on SQLite."""
    if db.engine.dialect.name != "postgresql":
        return None
    with db.engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        conn.rollback()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(db: Database, settings, placements: int, orm_insert: bool = False
           ) -> tuple[float, float, float, int, float | None]:
    """(start, end, client CPU seconds, placed, server CPU seconds or None) of placements
    one after another on one connection."""
    req = scheduler.Request(vcpus=2, memory_mb=4096, disk_gb=20)
    server = _server_cpu(db)
    cpu, started = time.process_time(), time.perf_counter()  # perf_counter: CLOCK_MONOTONIC
    placed = sum(_place(db, settings, req, orm_insert) for _ in range(placements))
    ended, cpu = time.perf_counter(), time.process_time() - cpu
    after = _server_cpu(db) if server is not None else None
    return started, ended, cpu, placed, None if after is None else after - server


def _worker(url: str, tmp: str, placements: int, ready: Any, out: Any,
            orm_insert: bool) -> None:
    """One controller worker process: its own engine, placements one after another."""
    db = Database(url)
    try:
        settings = load(Path(tmp))
        _server_cpu(db)  # opens its connection before the start
        ready.wait()
        out.put(_timed(db, settings, placements, orm_insert))
    finally:
        db.dispose()


def _run(url: str, tmp: str, placements: int, workers: int, orm_insert: bool
         ) -> tuple[float, int, float, float | None]:
    """Seconds from the first worker's start to the last one's end, servers placed, and
    the CPU seconds the clients and (PostgreSQL on this machine) their backends used."""
    ctx = multiprocessing.get_context("fork")  # the parent holds no connection by now
    ready, out = ctx.Barrier(workers), ctx.Queue()
    shares = [placements // workers + (i < placements % workers) for i in range(workers)]
    procs = [ctx.Process(target=_worker, args=(url, tmp, n, ready, out, orm_insert))
             for n in shares]
    for proc in procs:
        proc.start()
    done = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
        if proc.exitcode:
            raise RuntimeError(f"a bench worker failed (exit code {proc.exitcode})")
    server = [d[4] for d in done if d[4] is not None]
    return (max(d[1] for d in done) - min(d[0] for d in done), sum(d[3] for d in done),
            sum(d[2] for d in done), sum(server) if len(server) == len(done) else None)


def main(nodes: int = 1000, placements: int = 2000, database_url: str | None = None,
         workers: int = 1, orm_insert: bool = False) -> dict[str, float]:
    """On SQLite in a temporary directory, or on a fresh PostgreSQL database made (and
    dropped) with database_url, a URL allowed to create databases. With workers > 1,
    that many processes (as a controller's workers) share the placements, racing for
    the same nodes."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = (stack.enter_context(fresh_database(database_url)) if database_url
               else f"sqlite:///{Path(tmp) / 'bench.db'}")
        db = Database(url)
        try:
            migrate(db.engine)
            _nodes(db, nodes)
            if workers > 1:
                db.dispose()
                elapsed, placed, cpu, server = _run(url, tmp, placements, workers, orm_insert)
            else:
                started, ended, cpu, placed, server = _timed(db, load(Path(tmp)), placements,
                                                              orm_insert)
                elapsed = ended - started
            results = {"nodes": nodes, "placements": placements, "workers": workers,
                       "placed": placed, "placements_per_s": placements / elapsed,
                       # CPU per placement: under load the rate mostly says how long the
                       # processes waited for a core; this is what each placement costs.
                       "client_cpu_ms": cpu * 1000 / placements,
                       "overbooked_nodes": _overbooked(db),
                       "engine": db.engine.dialect.name}
            if server is not None:
                results["server_cpu_ms"] = server * 1000 / placements
        finally:
            db.dispose()
    for key, value in results.items():
        print(f"{key:20} {value:10.1f}" if isinstance(value, float) else f"{key:20} {value:10}")
    return results
