"""A storage node removed (atwill node remove, atwill leave): what becomes of its volumes.

Cinder lets an operator delete a backend's service (cinder-manage service remove) and
keeps its volumes' rows, pointing at a backend that is gone; an admin then resets them to
error and deletes them. Here the volumes' data is on the removed node's disk, so removing
it would lose them: the removal is refused while the node holds volumes or snapshots, with
how many and what to do. With --force they are not deleted: each volume and snapshot is
put in error with the reason, on no node (a delete then removes the row at once, with
nobody to wait for), for its owner or an admin to delete; what was being deleted goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ...core.errors import Conflict
from ..db.base import utcnow
from ..db.models import Node
from ..db.volume import Volume, VolumeSnapshot
from . import placement

HOLDS_VOLUMES = "node_holds_volumes"  # the error type `atwill leave` reads (no drain helps)


class HoldsVolumes(Conflict):
    """409 with error type node_holds_volumes."""

    kind = HOLDS_VOLUMES


@dataclass(frozen=True)
class Held:
    volumes: int
    snapshots: int

    def __bool__(self) -> bool:
        return bool(self.volumes or self.snapshots)


def held(session: Session, node: Node) -> Held:
    """The volumes and snapshots on the node's disk (or being made there)."""
    volumes = session.scalar(select(func.count(Volume.id)).where(
        Volume.node_id == node.id, Volume.status != "deleting")) or 0
    snaps = [s for s in session.scalars(
        select(VolumeSnapshot).join(Volume, Volume.id == VolumeSnapshot.volume_id).where(
            Volume.node_id == node.id, Volume.status != "deleting",
            VolumeSnapshot.status != "deleting")) if not placement.unscheduled(s)]
    return Held(int(volumes), len(snaps))


def refusal(node: Node, what: Held) -> str:
    host = f"{node.name}@atwill"
    return (f"Node {node.name} still holds {what.volumes} volume(s) and {what.snapshots} "
            "snapshot(s) of the Block Storage service on its disk; removing it would lose "
            "them. Delete them first, or keep their data elsewhere: disable its volume "
            f"service (openstack volume service set --disable {host} cinder-volume), "
            "upload each volume to an image (openstack image create --volume VOLUME NAME) "
            "and create a volume from it on another storage node. Or remove the node with "
            "--force: its volumes and snapshots are then kept in error, on no node, for "
            "their owners to delete.")


def check(session: Session, node: Node) -> None:
    what = held(session, node)
    if what:
        raise HoldsVolumes(refusal(node, what))


def orphan(session: Session, node: Node) -> None:
    """--force: the node's volumes and snapshots in error with the reason, on no node;
    a server still building (or rebuilding) on one of them fails (review finding: it
    stayed in BUILD)."""
    from ..compute.server_volumes_state import fail_boots_on  # noqa: PLC0415 - cycle

    reason = f"The storage node {node.name} was removed while the volume was on it."
    now = utcnow()
    for vol in session.scalars(select(Volume).where(Volume.node_id == node.id)):
        snaps = session.scalars(select(VolumeSnapshot).where(
            VolumeSnapshot.volume_id == vol.id)).all()
        if vol.status == "deleting":  # nobody will report it gone now
            session.execute(delete(VolumeSnapshot).where(VolumeSnapshot.volume_id == vol.id))
            session.delete(vol)
            continue
        for snap in snaps:
            if snap.status == "deleting":
                session.delete(snap)
            elif not placement.unscheduled(snap):
                snap.status, snap.updated_at = "error", now
                snap.error = f"The storage node {node.name} was removed while the " \
                             "snapshot was on it."
        vol.status, vol.error, vol.updated_at = "error", reason, now
        vol.node_id, vol.exports = None, {}
        fail_boots_on(session, vol)  # servers waiting to boot from it: ERROR, as Nova
    session.flush()
