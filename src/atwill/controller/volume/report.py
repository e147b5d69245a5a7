"""A storage node's report moves volumes and snapshots through Cinder's states."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest
from ..db.base import utcnow
from ..db.models import Node
from ..db.volume import Volume, VolumeAttachment, VolumeSnapshot
from . import attach_outcomes, settle

log = logging.getLogger("atwill.volume")
ERROR_CHARS = 1024
BUILDING = ("creating", "downloading")


def storage_report(session: Session, node: Node, report: dict[str, Any]) -> bool:
    """Apply one heartbeat's `volumes`; True when a row changed state (or went away)."""
    changed = False
    vols = session.scalars(select(Volume).where(Volume.node_id == node.id)).all()
    for vol in vols:
        entry = report.get(vol.id)
        entry = entry if isinstance(entry, dict) else None
        # Settled in error while the node was gone (settle.py): it is back, its report
        # says what became of the row.
        changed |= settle.resume(vol, settle.VOLUME_ERRORS)
        changed |= _snapshots(session, vol, entry)
        changed |= _volume(session, vol, entry)
    return changed


def _volume(session: Session, vol: Volume, entry: dict[str, Any] | None) -> bool:
    if vol.status == "deleting":
        if entry is not None:
            return False
        session.execute(delete(VolumeSnapshot).where(VolumeSnapshot.volume_id == vol.id))
        session.delete(vol)
        log.info("volume %s is gone from node %s", vol.id, vol.node_name)
        return True
    if entry is None:
        return False
    moved = _exports(vol, entry.get("exports"))
    moved |= attach_outcomes.export_errors(session, vol, vol.node_name or "",
                                           entry.get("export_errors"),
                                           entry.get("export_error_attachments"))
    state, size = entry.get("state"), entry.get("size_gb")
    new = vol.status
    if vol.status in BUILDING and state in ("available", "error"):
        new = state
        if new == "available" and session.scalar(select(VolumeAttachment.id).where(
                VolumeAttachment.volume_id == vol.id).limit(1)) is not None:
            new = "attaching"  # made for a server booting from it (compute/server_volumes)
    elif vol.status == "extending" and state == "available" and isinstance(size, int) \
            and size >= vol.size:
        new = "available"
    elif vol.status == "extending" and state == "error":
        new = "error_extending"
    elif vol.status == "detaching" and not vol.exports:
        new = "available"
    if new == vol.status:
        return moved
    vol.status, vol.updated_at = new, utcnow()
    error = entry.get("error")
    vol.error = error[:ERROR_CHARS] if new.startswith("error") and isinstance(error, str) \
        else None
    if new == "error":
        from ..compute.server_volumes_state import fail_boots_on  # noqa: PLC0415 - cycle

        fail_boots_on(session, vol)
    return True


def _exports(vol: Volume, reported: Any) -> bool:
    """Take the reported exports; whether they changed. A change alone concerns the
    server's node, which is given the volume once its export runs (server_volumes_state):
    a hot-plug, or an evacuation's rebuild on its boot volume, waits for it. Unbumped, that
    node's long-poll slept on (the lab's evacuated server never booted on its new node)."""
    if not isinstance(reported, dict):
        return False
    exports = {k: v for k, v in reported.items() if isinstance(v, dict)}
    if exports == (vol.exports or {}):
        return False
    vol.exports = exports
    return True


def _snapshots(session: Session, vol: Volume, entry: dict[str, Any] | None) -> bool:
    reported = (entry or {}).get("snapshots")
    reported = reported if isinstance(reported, dict) else {}
    changed = False
    for snap in session.scalars(select(VolumeSnapshot).where(
            VolumeSnapshot.volume_id == vol.id)):
        state = reported.get(snap.id)
        changed |= settle.resume(snap, settle.SNAPSHOT_ERRORS)
        if snap.status == "deleting" and state is None and entry is not None:
            session.delete(snap)
            changed = True
        elif snap.status == "creating" and state in ("available", "error"):
            snap.status, snap.updated_at = state, utcnow()
            changed = True
    return changed


MAX_REPORTED = 4096


def check_volume_reports(report: dict[str, Any]) -> None:
    """Refuse a report past its bounds before anything is stored (a 400 names the limit)."""
    if len(report) > MAX_REPORTED:
        raise BadRequest(f"The heartbeat reports {len(report)} volumes; at most "
                         f"{MAX_REPORTED} are accepted.")
