"""A storage node's desired state: its volumes, their snapshots and exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Instance, Node
from ..db.volume import Volume, VolumeAttachment, VolumeSnapshot
from .export_crl import export_crl

# Attachments whose compute node may connect to the export.
EXPORTED = ("attaching", "attached", "detaching")


def storage_desired(session: Session, node: Node, pki: Path | None = None) -> dict[str, Any]:
    """The node's volumes and exports, with the revocation list its exports load (crl)."""
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
        for vid, node_id, node_name in _targets(session, ids):
            entry = {"node_id": node_id, "client_cn": node_name}
            if entry not in exports[vid]:
                exports[vid].append(entry)
    return {"volumes": [{"id": v.id, "size_gb": v.size, "format": "qcow2",
                         "source": v.source, "snapshots": snaps[v.id],
                         "exports": exports[v.id]} for v in vols],
            "crl": export_crl(session, pki) if pki is not None else None}


def client_crl(session: Session, instances: list[dict[str, Any]], pki: Path) -> str | None:
    """The revocation list a compute node's NBD clients load (their ca-crl.pem), so that a
    removed storage node's certificate is refused as the exports refuse a removed client's;
    None for a node without volumes (or a controller without the CA key)."""
    if not any(inst.get("volumes") for inst in instances):
        return None
    return export_crl(session, pki)


def image_needed(session: Session, node_id: str, image_id: str) -> bool:
    """Whether a volume being built on this node is made from the image (the node may
    then download it like an instance's image)."""
    return session.scalar(select(Volume.id).where(
        Volume.node_id == node_id, Volume.image_id == image_id,
        Volume.status.in_(("creating", "downloading"))).limit(1)) is not None


def _targets(session: Session, volume_ids: list[str]) -> list[tuple[str, str, str]]:
    """(volume, node id, node name) of each export: a server's attachment goes to the node
    that runs the server now (it follows an evacuation or a move), any other to the node
    of its connector. Only to a node that still has its row and name: a removed node, or a
    new node that joined under its name (another id), is served nothing."""
    found = session.execute(select(VolumeAttachment, Instance.node_id, Instance.node_name)
                            .outerjoin(Instance, Instance.id == VolumeAttachment.instance_id)
                            .where(VolumeAttachment.volume_id.in_(volume_ids),
                                   VolumeAttachment.status.in_(EXPORTED))
                            .order_by(VolumeAttachment.created_at))
    wanted = []
    for att, inst_node, inst_name in found:
        node_id, name = (inst_node, inst_name) if inst_node else (att.node_id, att.node_name)
        wanted.append((att.volume_id, node_id, name))
    names = {n.id: n.name for n in session.scalars(select(Node).where(
        Node.id.in_({node_id for _, node_id, _ in wanted if node_id})))}
    return [t for t in wanted if t[1] and names.get(t[1]) == t[2]]
