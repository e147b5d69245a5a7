"""What a project uses and may use of the volume quotas (Cinder's resources)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...core import volume_quotas
from ..db.volume import Volume, VolumeQuota, VolumeQuotaClass, VolumeSnapshot, VolumeType
from ..servers import locks


def type_names(session: Session) -> list[str]:
    return list(session.scalars(select(VolumeType.name)))


def class_limits(session: Session, class_name: str = "default") -> dict[str, int]:
    limits = {n: volume_quotas.default(n) for n in volume_quotas.names(type_names(session))}
    for row in session.scalars(select(VolumeQuotaClass).where(
            VolumeQuotaClass.class_name == class_name)):
        limits[row.resource] = row.hard_limit
    return limits


def project_limits(session: Session, project_id: str) -> dict[str, int]:
    limits = class_limits(session)
    for row in session.scalars(select(VolumeQuota).where(VolumeQuota.project_id == project_id)):
        limits[row.resource] = row.hard_limit
    return limits


def project_usage(session: Session, project_id: str) -> dict[str, int]:
    """Volumes and snapshots count until they are gone from their node (Cinder too)."""
    used = dict.fromkeys(volume_quotas.names(type_names(session)), 0)
    rows = session.execute(
        select(VolumeType.name, func.count(Volume.id), func.coalesce(func.sum(Volume.size), 0))
        .join(VolumeType, VolumeType.id == Volume.volume_type_id)
        .where(Volume.project_id == project_id).group_by(VolumeType.name))
    for name, count, size in rows:
        used["volumes"] += count
        used["gigabytes"] += int(size)
        used[f"volumes_{name}"] = count
        used[f"gigabytes_{name}"] = int(size)
    snaps = session.execute(
        select(VolumeType.name, func.count(VolumeSnapshot.id),
               func.coalesce(func.sum(VolumeSnapshot.size), 0))
        .join(Volume, Volume.id == VolumeSnapshot.volume_id)
        .join(VolumeType, VolumeType.id == Volume.volume_type_id)
        .where(VolumeSnapshot.project_id == project_id).group_by(VolumeType.name))
    for name, count, size in snaps:
        used["snapshots"] += count
        used["gigabytes"] += int(size)
        used[f"snapshots_{name}"] = count
        used[f"gigabytes_{name}"] = used.get(f"gigabytes_{name}", 0) + int(size)
    return used


def charge(session: Session, project_id: str, type_name: str, volumes: int = 0,
           snapshots: int = 0, gigabytes: int = 0, size: int | None = None) -> None:
    """Refuse (413, Cinder's words) what would take the project past a limit."""
    # Concurrent creates of one project must not all pass on the same usage figures.
    locks.lock_project(session, project_id)
    limits = project_limits(session, project_id)
    if size is not None:
        volume_quotas.check_size(size, limits)
    deltas = {"volumes": volumes, f"volumes_{type_name}": volumes,
              "snapshots": snapshots, f"snapshots_{type_name}": snapshots,
              "gigabytes": gigabytes, f"gigabytes_{type_name}": gigabytes}
    volume_quotas.check(limits, project_usage(session, project_id), deltas)
