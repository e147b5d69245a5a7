"""Finding a volume the caller may see, with the rows its views need."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.volume import Volume, VolumeAttachment, VolumeSnapshot, VolumeType
from .common import can_read


def find_volume(session: Session, creds: Credentials, volume_id: str,
                lock: bool = False) -> Volume:
    query = select(Volume).where(Volume.id == volume_id)
    if lock:
        query = query.with_for_update()
    vol = session.scalar(query)
    if vol is None or not can_read(creds, vol.project_id):
        raise NotFound(f"Volume {volume_id[:64]} could not be found.")
    return vol


def find_snapshot(session: Session, creds: Credentials, snapshot_id: str) -> VolumeSnapshot:
    snap = session.get(VolumeSnapshot, snapshot_id)
    if snap is None or not can_read(creds, snap.project_id):
        raise NotFound(f"Snapshot {snapshot_id[:64]} could not be found.")
    return snap


def attachments_of(session: Session, volume_ids: list[str]) -> dict[str, list]:
    out: dict[str, list[VolumeAttachment]] = {v: [] for v in volume_ids}
    if volume_ids:
        for att in session.scalars(select(VolumeAttachment).where(
                VolumeAttachment.volume_id.in_(volume_ids))
                .order_by(VolumeAttachment.created_at)):
            out[att.volume_id].append(att)
    return out


def render(request, session: Session, vols: list[Volume], version: Version,
           creds: Credentials, extended: bool = True) -> list[dict]:
    from .views import volume_view  # noqa: PLC0415 - views import common only

    types = {t.id: t for t in session.scalars(select(VolumeType))}
    atts = attachments_of(session, [v.id for v in vols])
    return [volume_view(request, v, types[v.volume_type_id], atts[v.id], version, creds,
                        extended) for v in vols]
