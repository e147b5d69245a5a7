"""Placing a volume on a storage node: the nodes whose inventory offers storage.

A node takes new volumes while its cinder-volume service is enabled (Node.volume_disabled,
set through the Block Storage os-services); its nova-compute flags (Node.enabled) are the
compute scheduler's alone, as Cinder's and Nova's services are separate.

Claims are atomic (no overbooking of a node's sparse space, ever): what a node can still
take is its reported free space less what the controller already gave it, and that sum is
read only once the node is locked for the transaction (lock_nodes), so two creates, two
extends or a create and a snapshot cannot both be promised the same GiB — in one process
or across controller replicas. On PostgreSQL the lock is a transaction advisory lock per
node (taken in id order: no deadlock between transactions locking several); on SQLite
the database's write lock, taken before the sums are read and held to commit.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ...core.volume_placement import Backend, free_gb, pick, storage_of
from ..db.models import Node
from ..db.volume import Volume, VolumeSnapshot

NO_BACKEND = "No valid backend was found. No weighed backends available"
# What holds no space: a volume or snapshot whose making failed (or that no node was given:
# Cinder's allocated capacity grows only when a create succeeds).
NOT_HOLDING = ("error",)
# A snapshot Cinder's scheduler found no backend for: in error, never given to its node.
SNAPSHOT_NO_BACKEND = "No valid backend was found. Cannot place snapshot {id} on {host}."
# The advisory locks' first key: volume capacity (the second is the node's hashed id).
_LOCK_SPACE = 0x766F6C  # "vol"


def storage_nodes(session: Session) -> list[Node]:
    # As committed now (populate_existing): a claim reads them again once it holds its lock.
    nodes = session.scalars(select(Node).order_by(Node.name)
                            .execution_options(populate_existing=True)).all()
    return [n for n in nodes if storage_of(n.inventory) is not None]


def takes_new(node: Node | None) -> bool:
    """Whether Cinder's scheduler would consider the node's backend: its service enabled
    (and not frozen: a freeze disables it) and up."""
    return node is not None and not node.volume_disabled and not node.volume_frozen \
        and node.state == "up" and not node.forced_down \
        and storage_of(node.inventory) is not None


def lock_nodes(session: Session, node_ids: Iterable[str]) -> None:
    """Hold the nodes' capacity until commit: what is read after this is current, and no
    other transaction claims on them before this one commits."""
    dialect = session.get_bind().dialect.name
    for node_id in sorted(set(node_ids)):
        if dialect == "postgresql":
            session.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_SPACE}, "
                                 "hashtext(:node))"), {"node": node_id})
        else:
            # pysqlite begins the transaction at the first write: this one takes SQLite's
            # write lock (waiting for a concurrent claim's commit), and later reads see
            # every committed claim. One is enough: the lock is the whole database's.
            session.execute(text("UPDATE nodes SET name = name WHERE id = :node"),
                            {"node": node_id})
            return


def allocated(session: Session, node_id: str) -> int:
    volumes = session.scalar(select(func.coalesce(func.sum(Volume.size), 0)).where(
        Volume.node_id == node_id, Volume.status.not_in(NOT_HOLDING))) or 0
    snapshots = session.scalar(
        select(func.coalesce(func.sum(VolumeSnapshot.size), 0))
        .join(Volume, Volume.id == VolumeSnapshot.volume_id)
        .where(Volume.node_id == node_id, VolumeSnapshot.status.not_in(NOT_HOLDING))) or 0
    return int(volumes) + int(snapshots)


def backends(session: Session) -> list[Backend]:
    return [Backend(n.id, n.name, free_gb(n.inventory), allocated(session, n.id))
            for n in storage_nodes(session) if takes_new(n)]


def place(session: Session, vol: Volume) -> None:
    """Give vol a node with room (claimed), or leave it in error as Cinder's scheduler does."""
    candidates = [n.id for n in storage_nodes(session) if takes_new(n)]
    lock_nodes(session, candidates)
    chosen = pick([b for b in backends(session) if b.node_id in candidates], vol.size)
    if chosen is None:
        vol.status, vol.error = "error", NO_BACKEND
        return
    vol.node_id, vol.node_name = chosen.node_id, chosen.name


def claim_on(session: Session, node_id: str | None, size_gb: int) -> bool:
    """Whether the node can take size_gb more (a copy, an extend or a snapshot of a volume
    it holds), claimed until commit: the node locked, its backend one Cinder's scheduler
    would pass (service enabled, up) and room enough. The caller records what it takes in
    the same transaction."""
    if node_id is None:
        return False
    lock_nodes(session, [node_id])
    node = session.get(Node, node_id, populate_existing=True)
    return takes_new(node) and room_on(session, node_id) >= size_gb


def takes_copy(session: Session, node_id: str | None, size_gb: int) -> bool:
    """Whether the node holding a source can make a size_gb copy of it: Cinder's scheduler
    sends a clone to its source's backend, and finds none when that service is disabled."""
    return claim_on(session, node_id, size_gb)


def room_on(session: Session, node_id: str) -> int:
    """GiB a node can still take (for an extend or a snapshot of a volume it holds)."""
    node = session.get(Node, node_id)
    return free_gb(node.inventory if node else None) - allocated(session, node_id)


def unscheduled(snap: VolumeSnapshot) -> bool:
    """A snapshot left in error by the scheduler: no node was ever asked to make it."""
    return snap.status == "error" and (snap.error or "").startswith(
        SNAPSHOT_NO_BACKEND.split("{", 1)[0])
