"""Controllers register themselves in the database they share, so agents learn every live
one (the desired state's `controllers`) without `controller_urls` written by hand.

Each controller's leader worker (background.lead) refreshes its row every REFRESH seconds;
a row not refreshed for WINDOW seconds is no longer listed, and the next refresh of any
controller removes it. A controller appearing (a new row, or one back after WINDOW) or
disappearing is a change for every node: it bumps the revision once (O(1), everyone_at),
so every long-poll gets the new list at once. Clocks of the controllers are compared (as
heartbeat ages already are): keep them synchronised.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..config import Settings
from ..core import controller_urls
from .context import Controller
from .db.base import utcnow
from .db.models import ControllerRecord
from .revision import bump

log = logging.getLogger("atwill.controllers")
REFRESH = 5.0  # seconds between a controller's refreshes of its row
WINDOW = dt.timedelta(seconds=30)  # a row older than this is a controller gone


def register(session: Session, url: str, now: dt.datetime | None = None) -> bool:
    """Record that the controller at url is alive now; True if it was not listed before.
    Every node is then told, unless no other controller is live: alone, a controller
    already lists itself (controller_urls.merged), so the list does not change."""
    now = now or utcnow()
    others = [u for u in live(session, now) if u != url]
    row = session.scalar(select(ControllerRecord).where(ControllerRecord.public_url == url))
    if row is None:
        session.add(ControllerRecord(public_url=url, started_at=now, last_seen=now))
        appeared = True
    else:
        appeared = row.last_seen < now - WINDOW
        if appeared:
            row.started_at = now
        row.last_seen = max(row.last_seen, now)
    if appeared and others:
        bump(session)
    return appeared


def sweep(session: Session, now: dt.datetime | None = None) -> int:
    """Remove the rows of controllers gone for WINDOW (every node is told); how many."""
    now = now or utcnow()
    gone = session.execute(delete(ControllerRecord).where(
        ControllerRecord.last_seen < now - WINDOW)).rowcount or 0
    if gone:
        bump(session)
    return gone


def deregister(session: Session, url: str) -> bool:
    """Remove the row of the controller at url at once (every node is told)."""
    gone = session.execute(delete(ControllerRecord).where(
        ControllerRecord.public_url == url)).rowcount or 0
    if gone:
        bump(session)
    return bool(gone)


def live(session: Session, now: dt.datetime | None = None) -> list[str]:
    """The public URLs of the controllers seen within WINDOW."""
    since = (now or utcnow()) - WINDOW
    return list(session.scalars(select(ControllerRecord.public_url).where(
        ControllerRecord.last_seen >= since)))


def listed(session: Session, settings: Settings) -> list[str]:
    """The controllers an agent is told of: configured ones first (a seed, an override),
    then the live registered ones (core/controller_urls.merged)."""
    configured = [u for u in settings.controller_urls.split(",") if u.strip()]
    return controller_urls.merged(configured, live(session), settings.public_url)


def refresh(ctl: Controller) -> None:
    """One refresh: this controller's row, then the rows of controllers gone."""
    with ctl.db.session() as session:
        if register(session, ctl.settings.public_url):
            log.info("controller %s registered", ctl.settings.public_url)
    with ctl.db.session() as session:
        if gone := sweep(session):
            log.info("%d controller(s) not seen for %ds removed from the list", gone,
                     WINDOW.total_seconds())


async def keep_registered(ctl: Controller) -> None:
    """Refresh every REFRESH seconds until cancelled (the leader worker's task)."""
    while True:
        try:
            await asyncio.to_thread(refresh, ctl)
        except IntegrityError:
            # Two processes registered one URL at once: the other's row stands.
            log.debug("controller row for %s made concurrently", ctl.settings.public_url)
        except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
            log.exception("controller registration failed; retrying")
        await asyncio.sleep(REFRESH)
