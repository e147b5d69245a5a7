"""Scheduler placements per second against 1,000 simulated nodes, with real claims.

The nodes are *simulated*: rows in the database with an inventory and no agent
behind them (allowed for scale benchmarks only). Each placement runs exactly what
a server create runs: load the hosts, filter, weigh, and claim with the
conditional UPDATE in its own transaction. At the end, no node may be overbooked.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import select

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


def main(nodes: int = 1000, placements: int = 2000,
         database_url: str | None = None) -> dict[str, float]:
    """On SQLite in a temporary directory, or on a fresh PostgreSQL database made (and
    dropped) with database_url, a URL allowed to create databases."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = (stack.enter_context(fresh_database(database_url)) if database_url
               else f"sqlite:///{Path(tmp) / 'bench.db'}")
        db = Database(url)
        try:
            migrate(db.engine)
            _nodes(db, nodes)
            settings = load(Path(tmp))
            req = scheduler.Request(vcpus=2, memory_mb=4096, disk_gb=20)
            started = time.perf_counter()
            placed = sum(_place(db, settings, req) for _ in range(placements))
            elapsed = time.perf_counter() - started
            results = {"nodes": nodes, "placements": placements, "placed": placed,
                       "placements_per_s": placements / elapsed,
                       "overbooked_nodes": _overbooked(db),
                       "engine": db.engine.dialect.name}
        finally:
            db.dispose()
    for key, value in results.items():
        print(f"{key:20} {value:10.1f}" if isinstance(value, float) else f"{key:20} {value:10}")
    return results
