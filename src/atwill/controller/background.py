"""The controller's background loops: node monitor, drains, the controller's overlay peer.

A controller serves from several worker processes; the loops run in the one worker
holding an exclusive lock on LEADER_FILE in the state directory (fcntl.flock, held for
the life of that process and dropped by the kernel when it dies). The others try again
every TAKEOVER seconds, so a dead leader's loops resume in another worker within about
that. With PostgreSQL several controllers may share the database: the monitor's passes
then also take an advisory lock, so one controller at a time decides which node is down.
Every worker (leader or not) follows the others' revision bumps and identity changes
through files in the state directory (revision_signal, identity/token_cache).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import logging
import os
import time
from pathlib import Path

from sqlalchemy import text

from . import controllers, revision_signal
from .cluster import drain_loop
from .cluster.overlay_runner import OverlayRunner
from .context import Controller
from .db.base import utcnow
from .db.models import Node
from .ha import lease as ha_lease
from .ha import monitor as ha_monitor
from .servers import create_steps, resize_transfers
from .servers import resize as servers_resize
from .volume import settle as volume_settle

log = logging.getLogger("atwill.background")
MONITOR_LOCK = 0x617477  # "atw"
LEADER_FILE = "controller-leader.lock"
REVISION_FILE = "revision.stamp"
IDENTITY_FILE = "identity.stamp"
TAKEOVER = 1.0  # seconds between a follower's tries for the leader lock
TRANSFER_SWEEPER = resize_transfers.Sweeper()


def start(ctl: Controller) -> list[asyncio.Task]:
    """This worker's tasks: following the other workers, and leading when it can."""
    ctl.tokens.share(ctl.settings.path(IDENTITY_FILE))
    revision = ctl.settings.path(REVISION_FILE)
    revision_signal.share(revision)
    return [asyncio.create_task(revision_signal.follow(revision), name="revision-follow"),
            asyncio.create_task(lead(ctl), name="leader")]


async def stop(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def try_lock(path: Path) -> int | None:
    """An fd holding the exclusive lock on path, or None if another process holds it.

    The fd is not inherited (PEP 446): a child such as wireguard-go keeping it would
    keep the lock after this process died.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _try_lock_or_say(path: Path) -> int | None:
    try:
        return try_lock(path)
    except OSError as error:  # the state directory unwritable: say so, keep trying
        log.warning("cannot take the leader lock %s: %s", path, error)
        return None


async def lead(ctl: Controller) -> None:
    """Wait for the leader lock, then run the loops until cancelled (at shutdown)."""
    path = ctl.settings.path(LEADER_FILE)
    fd = _try_lock_or_say(path)
    while fd is None:
        await asyncio.sleep(TAKEOVER)
        fd = _try_lock_or_say(path)
    log.info("worker %d runs the background loops (node monitor%s)", os.getpid(),
             "" if ctl.settings.overlay == "none" else ", overlay")
    tasks = [asyncio.create_task(monitor(ctl), name="node-monitor"),
             asyncio.create_task(controllers.keep_registered(ctl), name="controllers"),
             asyncio.create_task(drain_loop.run(ctl), name="drains")]
    if ctl.settings.overlay != "none":
        tasks.append(asyncio.create_task(OverlayRunner(ctl).run(), name="overlay"))
    try:
        await asyncio.Event().wait()  # leader until this worker stops
    finally:
        await stop(tasks)
        os.close(fd)


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
            if node is None or node.fence_state != "pending":
                continue
            if ha_monitor.beat_since_verdict(node):
                # Heard after it was judged down: not off. Judged again next pass.
                log.warning("node %s beat after it was judged down: not fenced", node.name)
                node.fence_state = None
                continue
            ha_monitor.fence(ctl, session, node)
    with ctl.db.session() as session:
        if _leader(ctl, session):
            ha_lease.fence_by_lease(session, ctl, since)
    if ctl.settings.ha_auto_evacuate:
        with ctl.db.session() as session:
            if _leader(ctl, session):
                ha_monitor.auto_evacuate(session, ctl)
                ha_monitor.finish(session)
    if ctl.settings.resize_confirm_window > 0:
        with ctl.db.session() as session:
            if _leader(ctl, session):
                servers_resize.auto_confirm(session, ctl.settings.resize_confirm_window)
    if TRANSFER_SWEEPER.due():
        with ctl.db.session() as session:
            if _leader(ctl, session):
                resize_transfers.sweep(ctl, session)
    if create_steps.due():  # servers whose create stopped between its two steps
        # One short transaction a server, each checking the leader's lock (as fencing).
        create_steps.sweep(ctl.db, guard=lambda session: _leader(ctl, session))
    if volume_settle.due(ctl):
        with ctl.db.session() as session:
            if _leader(ctl, session):
                volume_settle.sweep(session, ctl)
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
