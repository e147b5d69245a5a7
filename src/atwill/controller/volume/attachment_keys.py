"""An attachment's NBD key belongs to the node its server runs on: a server that changes
node gets new keys for all its attachments, at the moment its host changes.

An export admits keys, not nodes (volume/desired.py), and the node a server left still
knows the old keys (its QEMU keeps them in memory to reconnect; a fenced node may not be
quite dead). With new keys the export to the new node refuses it: storage fencing for an
evacuation, and no credentials left valid on the old node after a cold migration, a
resize to another host or its revert, an unshelve, or a build retried elsewhere. Every
such move calls moved() (the one place keys are changed); each is followed by a fresh
QEMU on the new node, which reads the new key at its start. A live migration does not
call it: its destination gets a key of its own while both nodes hold the guest
(servers/live_migration_volumes.py).
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Instance
from ..db.volume import VolumeAttachment


def new_key() -> str:
    """An attachment's TLS pre-shared key (hex, 256 bits)."""
    return secrets.token_hex(32)


def moved(session: Session, inst: Instance, source_node_id: str | None) -> int:
    """New keys for inst's attachments if it now runs on another node than
    source_node_id (None: it had none, as an offloaded server); how many changed.

    Every attachment of the server, whatever its status: a detaching one is still
    exported until the new node says it is gone, a reserved one may be completed there.
    One made before migration 0026 has no key and gets none: its export admits the new
    node's certificate alone."""
    if inst.node_id is None or inst.node_id == source_node_id:
        return 0  # not placed, or stayed where it was (a resize on its own node)
    changed = 0
    for att in session.scalars(select(VolumeAttachment).where(
            VolumeAttachment.instance_id == inst.id, VolumeAttachment.nbd_key.is_not(None))):
        att.nbd_key = new_key()
        changed += 1
    return changed
