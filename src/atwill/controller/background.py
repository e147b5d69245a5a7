"""The controller's background loops: node monitor and the controller's overlay peer.

With SQLite there is one controller process. With PostgreSQL several replicas
may run; each loop then runs in the one replica holding an advisory lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time

from sqlalchemy import text

from .cluster.overlay_runner import OverlayRunner
from .context import Controller
from .db.base import utcnow
from .db.models import Node
from .ha import lease as ha_lease
from .ha import monitor as ha_monitor

log = logging.getLogger("atwill.background")
MONITOR_LOCK = 0x617477  # "atw"


def start(ctl: Controller) -> list[asyncio.Task]:
    tasks = [asyncio.create_task(monitor(ctl), name="node-monitor")]
    if ctl.settings.overlay != "none":
        tasks.append(asyncio.create_task(OverlayRunner(ctl).run(), name="overlay"))
    return tasks


async def stop(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _leader(ctl: Controller, session) -> bool:
    if ctl.db.engine.dialect.name != "postgresql":
        return True
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"),
                               {"k": MONITOR_LOCK}))


def _check(ctl: Controller, since: dt.datetime) -> list[str]:
    """One pass: detect, fence what needs it (each in its own transaction), evacuate."""
    with ctl.db.session() as session:
        if not _leader(ctl, session):
            return []
        down = [n.name for n in ha_monitor.detect(session, ctl, since)]
        to_fence = ha_monitor.needs_fencing(session, ctl)
    for node_id in to_fence:
        with ctl.db.session() as session:
            node = session.get(Node, node_id)
            if node is not None and node.fence_state == "pending":
                ha_monitor.fence(ctl, session, node)
    with ctl.db.session() as session:
        if _leader(ctl, session):
            ha_lease.fence_by_lease(session, ctl, since)
    if ctl.settings.ha_auto_evacuate:
        with ctl.db.session() as session:
            if _leader(ctl, session):
                ha_monitor.auto_evacuate(session, ctl)
                ha_monitor.finish(session)
    return down


async def monitor(ctl: Controller) -> None:
    """Detect failed nodes from heartbeat age; fence them; evacuate their instances."""
    period = ctl.settings.ha_poll_interval
    since, last = utcnow(), time.monotonic()
    while True:
        if time.monotonic() - last > max(1.0, 5 * period):
            # This loop was stalled (a busy host): silence is counted again from now.
            since = utcnow()
        last = time.monotonic()
        try:
            await asyncio.to_thread(_check, ctl, since)
        except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
            log.exception("node monitor failed; retrying")
        await asyncio.sleep(period)
