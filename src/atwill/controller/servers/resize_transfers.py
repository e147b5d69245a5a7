"""Sweeping the controller's copies of cold-migration disks that nobody will fetch.

A copy is removed when the destination says it was received or either node says it
failed. A server deleted between the upload and the fetch, a destination node that
died, or a controller stopped mid-request leave the copy behind: each could be as
large as image_size_limit, and a member could repeat resize-then-delete until the
controller's disk is full (review finding). The leader sweeps them now and then.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import resize_states
from ...core.every import Every
from ..context import Controller
from ..db.models import Migration

log = logging.getLogger("atwill.servers.resize")
SWEEP_EVERY = 60.0  # seconds between sweeps
PARTIAL_MAX_AGE = 6 * 3600.0  # an unfinished upload older than this was abandoned
SUFFIX = ".qcow2"


def sweep(ctl: Controller, session: Session, now: float | None = None) -> list[str]:
    """Remove the copies whose migration no longer moves; the names removed."""
    directory = ctl.settings.path("cold-migrations")
    if not directory.is_dir():
        return []
    now = time.time() if now is None else now
    moving = set(session.scalars(select(Migration.uuid).where(
        Migration.status.in_(resize_states.MOVING))))
    removed = []
    for path in directory.iterdir():
        stale = (path.name.endswith(SUFFIX) and path.name[:-len(SUFFIX)] not in moving) or \
            (path.name.startswith(".upload-") and now - path.stat().st_mtime > PARTIAL_MAX_AGE)
        if stale and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    if removed:
        log.info("removed %d cold-migration disk copies nobody will fetch", len(removed))
    return removed


class Sweeper(Every):
    """Calls sweep at most every SWEEP_EVERY seconds (the monitor loop runs 5 times a s)."""

    def __init__(self) -> None:
        super().__init__(SWEEP_EVERY)
