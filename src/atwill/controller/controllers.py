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
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..config import Settings
from ..core import controller_urls, overlay_peers
from .cluster.controller_peer import controller_peers_of, own_record
from .context import Controller
from .db.base import utcnow
from .db.models import ControllerRecord
from .revision import bump

log = logging.getLogger("atwill.controllers")
REFRESH = 5.0  # seconds between a controller's refreshes of its row
WINDOW = dt.timedelta(seconds=30)  # a row older than this is a controller gone


def register(session: Session, url: str, now: dt.datetime | None = None,
             overlay: dict[str, Any] | None = None) -> bool:
    """Record that the controller at url is alive now, with its overlay peer (the
    ControllerRecord overlay_* columns, controller_peer.own_record); True if it was not
    listed before. Every node is then told (as when its overlay peer changed), unless
    no other controller is live: alone, a controller already lists itself
    (controller_urls.merged) and is already its nodes' peer."""
    now = now or utcnow()
    others = [u for u in live(session, now) if u != url]
    row = session.scalar(select(ControllerRecord).where(ControllerRecord.public_url == url))
    changed = False
    if row is None:
        row = ControllerRecord(public_url=url, started_at=now, last_seen=now)
        session.add(row)
        appeared = True
    else:
        appeared = row.last_seen < now - WINDOW
        if appeared:
            row.started_at = now
        row.last_seen = max(row.last_seen, now)
    for column, value in (overlay or {}).items():
        if getattr(row, column) != value:
            setattr(row, column, value)
            changed = True
    if (appeared or changed) and others:
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
    return [row.public_url for row in live_rows(session, now)]


def live_rows(session: Session, now: dt.datetime | None = None) -> list[ControllerRecord]:
    """The rows of the controllers seen within WINDOW."""
    since = (now or utcnow()) - WINDOW
    return list(session.scalars(select(ControllerRecord).where(
        ControllerRecord.last_seen >= since)))


def listed(session: Session, settings: Settings, overlay_urls: list[str] | None = None,
           registered: list[str] | None = None) -> list[str]:
    """The controllers an agent is told of: the controllers' URLs through the overlay
    first (when several controllers are its peers, core/overlay_peers), then the
    configured ones (a seed, an override), then the live registered ones
    (core/controller_urls.merged)."""
    configured = [u for u in settings.controller_urls.split(",") if u.strip()]
    underlay = controller_urls.merged(
        configured, live(session) if registered is None else registered, settings.public_url)
    return overlay_peers.failover_list(
        [u for u in overlay_urls or () if controller_urls.valid(u)], underlay)


def refresh(ctl: Controller) -> None:
    """One refresh: this controller's row, then the rows of controllers gone."""
    overlay = own_record(ctl.settings)
    with ctl.db.session() as session:
        if register(session, ctl.settings.public_url, overlay=overlay):
            log.info("controller %s registered", ctl.settings.public_url)
    with ctl.db.session() as session:
        check_own_peer(ctl, live_rows(session))
    with ctl.db.session() as session:
        if gone := sweep(session):
            log.info("%d controller(s) not seen for %ds removed from the list", gone,
                     WINDOW.total_seconds())


_said: set[str] = set()  # the overlay clashes already logged (once each)


def check_own_peer(ctl: Controller, rows: list[ControllerRecord]) -> None:
    """Log once when another controller holds this one's overlay address or key: nodes
    are then given the older holder, not this controller (controller_peer)."""
    overlay = own_record(ctl.settings)
    if overlay["overlay_key"] is None:
        return
    peers = controller_peers_of(ctl, rows)
    if any(p["public_key"] == overlay["overlay_key"] for p in peers):
        return
    if overlay["overlay_ip"] not in _said:
        _said.add(overlay["overlay_ip"])
        log.error("another controller holds this controller's overlay address %s (or "
                  "key): nodes do not peer with this one; set another overlay_address "
                  "(docs/controllers.md)", overlay["overlay_ip"])


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
