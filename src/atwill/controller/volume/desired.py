"""A storage node's desired state: its volumes, their snapshots and exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import migration_states, volume_handover
from ..db.models import Instance, Migration, Node
from ..db.volume import Volume, VolumeAttachment, VolumeSnapshot
from . import placement
from .export_crl import export_crl

# Attachments whose compute node may connect to the export.
EXPORTED = ("attaching", "attached", "detaching")
# A live migration's states while its destination may connect too (servers/
# live_migration_agents.py).
LIVE = ("preparing", "running", migration_states.POST_COPY)


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
            if not placement.unscheduled(snap):
                snaps[snap.volume_id].append(snap.id)
        for vid, node_id, node_name, keys, att_id in _targets(session, ids):
            _admit(exports[vid], node_id, node_name, keys, att_id)
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


def psk_identity(att: VolumeAttachment) -> str:
    """The name an attachment's QEMU presents with its key (TLS-PSK username): the one
    its live migration's destination was given, once it moved there (connector)."""
    named = volume_handover.moved_identity(att.id, (att.connector or {}).get("psk_identity"))
    return named or f"{volume_handover.PREFIX}{att.id}"


def live_migration(session: Session, instance_id: str) -> Migration | None:
    """The server's live migration under way, whose destination its exports admit too."""
    return session.scalar(select(Migration).where(
        Migration.instance_uuid == instance_id, Migration.migration_type == "live-migration",
        Migration.status.in_(LIVE), Migration.tls_key.is_not(None),
        Migration.volume_key.is_not(None))
        .order_by(Migration.id.desc()).limit(1))


def destination_psk(att: VolumeAttachment, record: Migration) -> dict[str, str]:
    """The attachment's identity for record's destination (core/volume_handover.py),
    from the migration's volume key: never sent to the source (review finding: derived
    from the TLS key the source holds, the source could compute it and keep the volume)."""
    assert record.volume_key is not None
    return volume_handover.destination_psk(record.volume_key, att.id, record.id)


def attachment_psk(att: VolumeAttachment) -> dict[str, str] | None:
    """The attachment's own NBD identity for its compute node; None for one made before
    migration 0026 (its QEMU presents the node's certificate)."""
    return {"identity": psk_identity(att), "key": att.nbd_key} if att.nbd_key else None


def _admit(entries: list[dict[str, Any]], node_id: str, node_name: str,
           key: str | None, att_id: str) -> None:
    """Add an attachment to its node's export: the export admits the keys of the
    attachments made to it (psk), or the node's certificate if one of them has none;
    attachments names them (the attempts an export error is of: attach_outcomes)."""
    entry = next((e for e in entries if e["node_id"] == node_id), None)
    if entry is None:
        entry = {"node_id": node_id, "client_cn": node_name, "psk": [], "attachments": []}
        entries.append(entry)
    if att_id not in entry["attachments"]:
        entry["attachments"].append(att_id)
    if key is None:
        entry["psk"] = None  # one attachment without a key: the node's certificate
    elif entry["psk"] is not None:
        entry["psk"].append(key)


def _targets(session: Session,
             volume_ids: list[str]) -> list[tuple[str, str, str, str | None, str]]:
    """(volume, node id, node name, key, attachment id) of each export: a server's
    attachment goes to the node that runs the server now (it follows an evacuation or a
    move), none while it runs nowhere (shelved offloaded: not to the node it left), any
    other attachment to the node of its connector. Only to a node that still has its row
    and name: a removed node, or a new node that joined under its name (another id), is
    served nothing."""
    found = session.execute(select(VolumeAttachment, Instance.id, Instance.node_id,
                                   Instance.node_name)
                            .outerjoin(Instance, Instance.id == VolumeAttachment.instance_id)
                            .where(VolumeAttachment.volume_id.in_(volume_ids),
                                   VolumeAttachment.status.in_(EXPORTED))
                            .order_by(VolumeAttachment.created_at))
    wanted = []
    for att, inst_id, inst_node, inst_name in found:
        node_id, name = (inst_node, inst_name) if inst_id else (att.node_id, att.node_name)
        psk = attachment_psk(att)
        wanted.append((att.volume_id, node_id, name,
                       f"{psk['identity']}:{psk['key']}" if psk else None, att.id))
        moving = live_migration(session, inst_id) if inst_id and psk else None
        if moving is not None and moving.source_node_id == node_id:
            # One daemon serves the volume to both ends of a live migration: the export
            # to the source admits the destination's key until the migration ends.
            wanted.append((att.volume_id, node_id, name,
                           volume_handover.psk_line(destination_psk(att, moving)), att.id))
    names = {n.id: n.name for n in session.scalars(select(Node).where(
        Node.id.in_({t[1] for t in wanted if t[1]})))}
    return [t for t in wanted if t[1] and names.get(t[1]) == t[2]]
