"""The controller's background loops: node monitor and the controller's overlay peer.

With SQLite there is one controller process. With PostgreSQL several replicas
may run; each loop then runs in the one replica holding an advisory lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import text

from .cluster import nodes
from .cluster.overlay_runner import OverlayRunner
from .context import Controller

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


def _check(ctl: Controller) -> list[str]:
    settings = ctl.settings
    with ctl.db.session() as session:
        if not _leader(ctl, session):
            return []
        return nodes.mark_down(session, settings.heartbeat_interval, settings.heartbeat_misses)


async def monitor(ctl: Controller) -> None:
    """Mark nodes down after the configured number of missed heartbeats."""
    while True:
        try:
            for name in await asyncio.to_thread(_check, ctl):
                log.warning("node %s is down: %d heartbeats missed", name,
                            ctl.settings.heartbeat_misses)
        except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
            log.exception("node monitor failed; retrying")
        await asyncio.sleep(ctl.settings.heartbeat_interval)
