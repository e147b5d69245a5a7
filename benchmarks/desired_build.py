"""One node's desired-state build at N nodes, in process (CPU seconds per build).

    .venv/bin/python benchmarks/desired_build.py [--nodes 500] [--builds 200] [--url URL]

N node rows (each with an overlay address, a WireGuard key, an endpoint and heartbeat-sized
JSON columns) in a fresh SQLite file (or the empty PostgreSQL database at --url: the
caller makes it and drops it), then `desired_state` built for --builds nodes round robin, at one
revision (the shared fleet-wide lists are built once: what a change's wake-up costs) and
with the shared lists cleared before each build. Run it with PYTHONPATH=OLD/src (a
`git archive` of a commit before cluster/fleet_lists.py) for the cost before them.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from atwill.config import Settings
from atwill.controller.cluster import desired as desired_module
from atwill.controller.context import Controller
from atwill.controller.db.models import ClusterRevision, Node
from atwill.controller.db.session import Database, migrate

try:
    from atwill.controller.cluster import fleet_lists
except ImportError:  # a tree from before them (PYTHONPATH=old/src): every build reads all
    fleet_lists = None  # type: ignore[assignment]


def fill(db: Database, count: int) -> list[str]:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with db.session() as session:
        session.merge(ClusterRevision(id=1, revision=10, everyone_at=3))
        for i in range(count):
            session.add(Node(
                id=f"n{i:05}", name=f"node{i:05}", overlay_ip=f"10.99.{i // 250}.{i % 250 + 2}",
                wireguard_public_key=base64.b64encode(os.urandom(32)).decode(),
                endpoint_host=f"192.0.2.{i % 250 + 1}", last_heartbeat=now,
                inventory={"vcpus": 8, "memory_mb": 16384, "local_gb": 200,
                           "cpu_model": "x" * 40, "numa": [{"cpus": list(range(8))}]},
                host_status={"agent_heard": True, "peers": {f"n{j:05}": 0.5 for j in range(8)}},
                overlay_status={"interface": "wg0", "peers": i}))
    return [f"n{i:05}" for i in range(count)]


@contextlib.contextmanager
def filled(url: str, count: int) -> Iterator[tuple[Controller, list[str]]]:
    """A controller (no keys) on the database at url, or a fresh SQLite file if empty,
    migrated and filled with count nodes; their ids. The caller drops a URL's database."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(url or f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate(db.engine)
        try:
            ctl = Controller(settings=Settings(state_dir=Path(tmp)), db=db,  # type: ignore[arg-type]
                             keys=None)  # type: ignore[arg-type]
            yield ctl, fill(db, count)
        finally:
            db.dispose()


def per_build(ctl: Controller, ids: list[str], builds: int, shared: bool) -> float:
    started = time.process_time()
    for k in range(builds):
        if not shared and fleet_lists is not None:
            fleet_lists.clear()
        with ctl.db.session() as session:
            desired_module.desired_state(session, ctl, session.get(Node, ids[k % len(ids)]))
    return (time.process_time() - started) / builds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--builds", type=int, default=200)
    parser.add_argument("--url", default="")
    args = parser.parse_args()
    with filled(args.url, args.nodes) as (ctl, ids):
        per_build(ctl, ids, 5, False)  # warm
        rebuilt = per_build(ctl, ids, args.builds, False)
        shared = per_build(ctl, ids, args.builds, True)
        tree = "no shared lists (old tree)" if fleet_lists is None else "this tree"
        print(f"{args.nodes} nodes, {ctl.db.engine.dialect.name}, {tree}: one build "
              f"{rebuilt * 1000:.2f} ms CPU with the fleet-wide lists rebuilt, "
              f"{shared * 1000:.2f} ms shared ({rebuilt / shared:.1f}x)")


if __name__ == "__main__":
    main()
