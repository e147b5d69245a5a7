"""A storage node's report moves volumes and snapshots through Cinder's states."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest
from ..db.base import utcnow
from ..db.models import Node
from ..db.volume import Volume, VolumeAttachment, VolumeSnapshot
from . import attach_outcomes, lock_order, settle

log = logging.getLogger("atwill.volume")
ERROR_CHARS = 1024
BUILDING = ("creating", "downloading")


def storage_report(session: Session, node: Node, report: dict[str, Any]) -> bool:
    """Apply one heartbeat's `volumes`; True when a row changed state (or went away)."""
    changed = False
    vols = _held_first(session, node, report)
    for vol in vols:
        entry = report.get(vol.id)
        entry = entry if isinstance(entry, dict) else None
        # Settled in error while the node was gone (settle.py): it is back, its report
        # says what became of the row.
        changed |= settle.resume(vol, settle.VOLUME_ERRORS)
        changed |= _snapshots(session, vol, entry)
        changed |= _volume(session, vol, entry)
    return changed


def _held_first(session: Session, node: Node, report: dict[str, Any]) -> list[Volume]:
    """The node's volumes, read after the rows of the servers this report may put in
    ERROR are held (volume/lock_order.py: servers before volumes). A failed boot volume
    (fail_boots_on) or export (export_errors) updated the volume, then the server: with
    the server's delete, which holds its row and then locks its volumes, PostgreSQL
    deadlocked. Read again once servers were held: a delete may have committed meanwhile."""
    query = select(Volume).where(Volume.node_id == node.id)
    vols = session.scalars(query).all()
    held: set[str] = set()
    while wanted := _may_fail(session, vols, report) - held:
        lock_order.hold_servers(session, held | wanted)
        held |= wanted
        vols = session.scalars(query.execution_options(populate_existing=True)).all()
    return list(vols)


def _may_fail(session: Session, vols: Sequence[Volume], report: dict[str, Any]) -> set[str]:
    """The servers the report may put in ERROR: those booting from a volume it says was
    not made, those attaching one it says it cannot export."""
    failed, unexported = [], []
    for vol in vols:
        entry = report.get(vol.id)
        if not isinstance(entry, dict):
            continue
        if vol.status in BUILDING and entry.get("state") == "error":
            failed.append(vol.id)
        if isinstance(entry.get("export_errors"), dict) and entry["export_errors"]:
            unexported.append(vol.id)
    if not failed and not unexported:
        return set()  # (no query: beats stay cheap)
    att = VolumeAttachment
    return {i for i in session.scalars(select(att.instance_id).where(or_(
        and_(att.volume_id.in_(failed), att.boot_index == 0),
        and_(att.volume_id.in_(unexported), att.status == "attaching")))) if i}


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
