"""The volumes of a live-migrating server: re-attached on the destination, never copied.

Each volume keeps its one export (a qemu-storage-daemon on its storage node): while the
migration runs, that export admits the destination's own key besides the source's
(volume/desired.py, core/volume_handover.py), and the destination's incoming QEMU is
started with the volume's NBD disk and device (same serial, boot index and export),
with that key. Only the local disk, if any, is mirrored. Once the guest runs on the
destination its key becomes the attachment's (Nova's new attachment for the destination
host replacing the source's), and the export to the source is handed over to the
destination: the storage node restarts the daemon on the same port without the source's
key, which cuts the source off (storage/exports.py). On failure the destination's key
is no longer admitted, and the source goes on as it was.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ...core import volume_handover
from ..compute import server_volumes_state
from ..db.models import Instance, Migration
from ..db.volume import Volume, VolumeAttachment
from ..volume.desired import destination_psk

# Attachments a live migration carries; any other state refuses it (live_migration.py).
MOVABLE = ("attached",)


def refusal(session: Session, inst: Instance) -> str | None:
    """Why the server's volumes cannot be live-migrated (None: they can)."""
    for att in server_volumes_state.of_server(
            session, inst.id, (*server_volumes_state.LISTED, "reserved")):
        if att.status not in MOVABLE:
            return (f"volume {att.volume_id} is {att.status}; live-migrate it once the "
                    "attachment is done")
        if not att.nbd_key:
            # Served to the node's certificate (before migration 0026): one node only.
            return (f"volume {att.volume_id} was attached before attachments had keys of "
                    "their own; detach and attach it again, or cold-migrate the server")
    return None


def without_local_disk(session: Session, inst: Instance) -> bool:
    """Whether the server boots from a volume: it has no disk of its node's to copy."""
    return any(att.boot_index == 0 for att in server_volumes_state.of_server(
        session, inst.id, MOVABLE))


def incoming(session: Session, inst: Instance, record: Migration,
             spec: dict[str, Any]) -> bool:
    """Give the destination's spec each volume with the destination's key; False while
    a volume's export does not admit that key yet (the destination then waits: its
    QEMU connects to the volumes as it starts)."""
    volumes = spec.get("volumes") or []
    by_volume = {att.volume_id: att for att in server_volumes_state.of_server(
        session, inst.id, MOVABLE)}
    if not by_volume and not volumes:
        return True
    if not record.tls_key or not record.volume_key:
        return False
    if set(by_volume) != {entry["volume_id"] for entry in volumes}:
        return False  # one not exported yet: its QEMU would lack a device the guest has
    for entry in volumes:
        att = by_volume.get(entry["volume_id"])
        vol = session.get(Volume, entry["volume_id"])
        if att is None or vol is None:
            return False
        psk = destination_psk(att, record)
        if not volume_handover.admits((vol.exports or {}).get(record.source_node_id),
                                      psk["identity"]):
            return False
        entry["psk"] = psk
    return True


def hand_over(session: Session, inst: Instance, record: Migration) -> None:
    """The guest runs on the destination: its attachments are the destination's (its
    key, node, and the export it is plugged in with, which is the same daemon and port
    until the storage node reports the export handed over)."""
    if not record.tls_key or not record.volume_key:
        return
    for att in server_volumes_state.of_server(session, inst.id):
        _move(att, record)


def _move(att: VolumeAttachment, record: Migration) -> None:
    if not att.nbd_key:
        return
    psk = destination_psk(att, record)
    connector = dict(att.connector or {})
    connector["psk_identity"] = psk["identity"]
    kept = connector.get("export")
    if isinstance(kept, dict):
        connector["export"] = {**kept, "node_id": record.dest_node_id}
    att.connector, att.nbd_key = connector, psk["key"]
    att.node_id, att.node_name = record.dest_node_id, record.dest_compute
