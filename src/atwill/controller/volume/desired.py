"""A storage node's desired state: its volumes, their snapshots and exports."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Node
from ..db.volume import Volume, VolumeAttachment, VolumeSnapshot

# Attachments whose compute node may connect to the export.
EXPORTED = ("attaching", "attached", "detaching")


def storage_desired(session: Session, node: Node) -> dict[str, Any]:
    vols = session.scalars(select(Volume).where(
        Volume.node_id == node.id, Volume.status != "deleting").order_by(Volume.created_at,
                                                                         Volume.id)).all()
    ids = [v.id for v in vols]
    snaps: dict[str, list[str]] = {v: [] for v in ids}
    exports: dict[str, list[dict[str, str]]] = {v: [] for v in ids}
    if ids:
        for snap in session.scalars(select(VolumeSnapshot).where(
                VolumeSnapshot.volume_id.in_(ids), VolumeSnapshot.status != "deleting")
                .order_by(VolumeSnapshot.created_at, VolumeSnapshot.id)):
            snaps[snap.volume_id].append(snap.id)
        # Only to a node that is still the one attached: a removed node (its row gone) or
        # a new node that joined under its name (another id) is served nothing.
        for att in session.scalars(select(VolumeAttachment).join(
                Node, (Node.id == VolumeAttachment.node_id)
                & (Node.name == VolumeAttachment.node_name)).where(
                VolumeAttachment.volume_id.in_(ids), VolumeAttachment.status.in_(EXPORTED))
                .order_by(VolumeAttachment.created_at)):
            entry = {"node_id": att.node_id, "client_cn": att.node_name}
            if entry not in exports[att.volume_id]:
                exports[att.volume_id].append(entry)
    return {"volumes": [{"id": v.id, "size_gb": v.size, "format": "qcow2",
                         "source": v.source, "snapshots": snaps[v.id],
                         "exports": exports[v.id]} for v in vols]}


def image_needed(session: Session, node_id: str, image_id: str) -> bool:
    """Whether a volume being built on this node is made from the image (the node may
    then download it like an instance's image)."""
    return session.scalar(select(Volume.id).where(
        Volume.node_id == node_id, Volume.image_id == image_id,
        Volume.status.in_(("creating", "downloading"))).limit(1)) is not None
