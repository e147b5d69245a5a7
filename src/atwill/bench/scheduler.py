"""Scheduler placements per second against 1,000 simulated nodes, with real claims.

The nodes are *simulated*: rows in the database with an inventory and no agent
behind them (allowed for scale benchmarks only). Each placement runs exactly what
a server create runs: load the hosts, filter, weigh, and claim with the
conditional UPDATE in its own transaction. At the end, no node may be overbooked.
With --workers, several processes place at once (a controller's worker processes), so
their claims race for the same nodes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from ..config import load
from ..controller.db.models import Instance, Node
from ..controller.db.session import Database, migrate
from ..controller.servers import placement
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


def _place(db: Database, settings, req: scheduler.Request) -> bool:
    with db.session() as session:
        inst = Instance(id=str(uuid.uuid4()), name="bench", project_id="p", user_id="u",
                        vcpus=req.vcpus, memory_mb=req.memory_mb, disk_gb=req.disk_gb)
        session.add(inst)
        session.flush()
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


def _worker(url: str, tmp: str, placements: int, ready: Any, out: Any) -> None:
    """One controller worker process: its own engine, placements one after another."""
    db = Database(url)
    try:
        settings = load(Path(tmp))
        req = scheduler.Request(vcpus=2, memory_mb=4096, disk_gb=20)
        ready.wait()
        started = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
        placed = sum(_place(db, settings, req) for _ in range(placements))
        out.put((started, time.perf_counter(), placed))
    finally:
        db.dispose()


def _run(url: str, tmp: str, placements: int, workers: int) -> tuple[float, int]:
    """Seconds from the first worker's start to the last one's end, and servers placed."""
    ctx = multiprocessing.get_context("fork")  # the parent holds no connection by now
    ready, out = ctx.Barrier(workers), ctx.Queue()
    shares = [placements // workers + (i < placements % workers) for i in range(workers)]
    procs = [ctx.Process(target=_worker, args=(url, tmp, n, ready, out)) for n in shares]
    for proc in procs:
        proc.start()
    done = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
        if proc.exitcode:
            raise RuntimeError(f"a bench worker failed (exit code {proc.exitcode})")
    return (max(d[1] for d in done) - min(d[0] for d in done), sum(d[2] for d in done))


def main(nodes: int = 1000, placements: int = 2000, database_url: str | None = None,
         workers: int = 1) -> dict[str, float]:
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
                elapsed, placed = _run(url, tmp, placements, workers)
            else:
                settings = load(Path(tmp))
                req = scheduler.Request(vcpus=2, memory_mb=4096, disk_gb=20)
                started = time.perf_counter()
                placed = sum(_place(db, settings, req) for _ in range(placements))
                elapsed = time.perf_counter() - started
            results = {"nodes": nodes, "placements": placements, "workers": workers,
                       "placed": placed, "placements_per_s": placements / elapsed,
                       "overbooked_nodes": _overbooked(db),
                       "engine": db.engine.dialect.name}
        finally:
            db.dispose()
    for key, value in results.items():
        print(f"{key:20} {value:10.1f}" if isinstance(value, float) else f"{key:20} {value:10}")
    return results
