"""Placing a volume on a storage node: the nodes whose inventory offers storage.

A node takes new volumes while its cinder-volume service is enabled (Node.volume_disabled,
set through the Block Storage os-services); its nova-compute flags (Node.enabled) are the
compute scheduler's alone, as Cinder's and Nova's services are separate.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...core.volume_placement import Backend, free_gb, pick, storage_of
from ..db.models import Node
from ..db.volume import Volume, VolumeSnapshot

NO_BACKEND = "No valid backend was found. No weighed backends available"


def storage_nodes(session: Session) -> list[Node]:
    nodes = session.scalars(select(Node).order_by(Node.name)).all()
    return [n for n in nodes if storage_of(n.inventory) is not None]


def allocated(session: Session, node_id: str) -> int:
    volumes = session.scalar(select(func.coalesce(func.sum(Volume.size), 0))
                             .where(Volume.node_id == node_id)) or 0
    snapshots = session.scalar(
        select(func.coalesce(func.sum(VolumeSnapshot.size), 0))
        .join(Volume, Volume.id == VolumeSnapshot.volume_id)
        .where(Volume.node_id == node_id)) or 0
    return int(volumes) + int(snapshots)


def backends(session: Session) -> list[Backend]:
    return [Backend(n.id, n.name, free_gb(n.inventory), allocated(session, n.id))
            for n in storage_nodes(session)
            if not n.volume_disabled and n.state == "up" and not n.forced_down]


def place(session: Session, vol: Volume) -> None:
    """Give vol a node with room, or leave it in error as Cinder's scheduler does."""
    chosen = pick(backends(session), vol.size)
    if chosen is None:
        vol.status, vol.error = "error", NO_BACKEND
        return
    vol.node_id, vol.node_name = chosen.node_id, chosen.name


def takes_copy(session: Session, node_id: str | None, size_gb: int) -> bool:
    """Whether the node holding a source can make a size_gb copy of it: its volume service
    enabled (Cinder's scheduler sends a clone to its source's backend, and finds none when
    that service is disabled) and room enough."""
    node = session.get(Node, node_id) if node_id is not None else None
    return node is not None and not node.volume_disabled and room_on(session, node.id) >= size_gb


def room_on(session: Session, node_id: str) -> int:
    """GiB a node can still take (for an extend or a snapshot of a volume it holds)."""
    node = session.get(Node, node_id)
    return free_gb(node.inventory if node else None) - allocated(session, node_id)
