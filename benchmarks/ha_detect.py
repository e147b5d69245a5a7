"""The HA monitor's detect pass at N nodes, in process (CPU ms per pass), when one node of
the fleet is down (so the pass cannot answer from its one-row "all heard" query).

    .venv/bin/python benchmarks/ha_detect.py [--nodes 2000] [--passes 50] [--url URL]

N node rows as benchmarks/desired_build.py makes them (heartbeat-sized JSON columns, peer
reports), one of them down for an hour, in a fresh SQLite file (or the empty PostgreSQL
database at --url: the caller makes it and drops it). The monitor runs a pass every
ha_poll_interval (0.2 s), so a pass of P ms costs 5 P ms of CPU per second.
Run it with PYTHONPATH=OLD/src for the tree before a change.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from atwill.controller.db.models import Node
from atwill.controller.ha import monitor

sys.path.insert(0, str(Path(__file__).parent))
from desired_build import filled  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--passes", type=int, default=50)
    parser.add_argument("--url", default="")
    args = parser.parse_args()
    with filled(args.url, args.nodes) as (ctl, ids):
        db = ctl.db
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        since = now - dt.timedelta(hours=2)
        with db.session() as session:
            for node in session.query(Node):
                node.state, node.health = "up", "up"
            dead = session.get(Node, ids[0])
            dead.state, dead.health = "down", "down"
            dead.last_heartbeat = now - dt.timedelta(hours=1)
        for _ in range(3):  # warm
            with db.session() as session:
                assert monitor.detect(session, ctl, since) == []
        spent = 0.0
        for _ in range(args.passes):
            with db.session() as touch:  # every node but the dead one beat meanwhile
                touch.query(Node).filter(Node.id != ids[0]).update(
                    {Node.last_heartbeat: dt.datetime.now(dt.UTC).replace(tzinfo=None)})
            began = time.process_time()
            with db.session() as session:
                assert monitor.detect(session, ctl, since) == []
            spent += time.process_time() - began
        print(f"{args.nodes} nodes, {db.engine.dialect.name}, one down: one detect pass "
              f"{spent * 1000 / args.passes:.2f} ms CPU (x5 per second: "
              f"{spent * 500 / args.passes:.1f} % of a core)")


if __name__ == "__main__":
    main()
