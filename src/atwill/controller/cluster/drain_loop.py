"""The leader's drain loop: every unfinished drain of a node still draining goes on.

Runs in the one worker holding the controller's leader lock (background.py). Each pass
looks at the nodes disabled with the reason "draining": one with no drain recorded (a
drain of an earlier release, or `openstack compute service set --disable-reason
draining`) gets a new one; one whose drain has not finished is stepped once if this
process holds its claim or can take it (drain.claim: nobody runs it, or its runner died
or stopped refreshing it). So a drain outlives the process that began it: after a
restart or a leader takeover it continues with no request, and no instance is moved
twice (each step starts from the migrations already recorded).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import delete, select

from ...core import drain_plan
from ...core.errors import ApiError
from ..context import Controller
from ..db.drains import NodeDrain
from ..db.models import Node
from . import drain

log = logging.getLogger("atwill.cluster.drain")
PERIOD = 1.0  # seconds between passes (a drain's step interval)


class Loop:
    """This process's runs, one per node it steps, kept across passes for their refusals."""

    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.runner = drain.runner_id()
        self.runs: dict[str, drain.Run] = {}

    def due(self) -> list[str]:
        """The draining nodes whose drain has not finished (recording missing ones)."""
        with self.ctl.db.session() as session:
            session.execute(delete(NodeDrain).where(  # of nodes removed since
                NodeDrain.node_id.not_in(select(Node.id))))
            found = list(session.scalars(select(Node).where(
                Node.enabled.is_(False), Node.disabled_reason == drain_plan.REASON,
                Node.state == "up")))
            out = []
            for node in found:
                row = session.get(NodeDrain, node.id)
                if row is None:
                    log.info("node %s is draining with no drain recorded: one begins", node.name)
                    drain.begin(session, node)
                    row = session.get(NodeDrain, node.id)
                if row is not None and row.finished_at is None:
                    if node.id not in self.runs:
                        self.runs[node.id] = drain.resume(node, row, self.runner)
                    out.append(node.id)
        for gone in set(self.runs) - set(out):
            del self.runs[gone]
        return out

    def once(self) -> None:
        for node_id in self.due():
            run = self.runs[node_id]
            try:
                if drain.step(self.ctl, run).finished:
                    log.info("drain of %s finished", run.node_name)
                    del self.runs[node_id]
            except ApiError as err:  # restored or removed since the pass began
                log.info("drain of %s ended: %s", run.node_name, err)
                self.runs.pop(node_id, None)


async def run(ctl: Controller) -> None:
    loop = Loop(ctl)
    while True:
        try:
            await asyncio.to_thread(loop.once)
        except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
            log.exception("drain loop failed; retrying")
        await asyncio.sleep(PERIOD)
