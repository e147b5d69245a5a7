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

A new volume locks only the node it is given (place): on PostgreSQL the nodes are ranked
from what is committed, the best one locked, and its room read again under the lock; a
node that no longer fits is passed over and the next tried. So creates landing on
different nodes never wait for each other. A node is locked without waiting (a try) when
the transaction already holds a node's lock or volume rows (lock_order.py's order: a
wait there could close a cycle); a node another claim holds is then passed over, and
when every fitting node is held the claim tries again for a short time (CLAIM_WAIT,
0.25 s in all) before it gives up as Cinder's scheduler does (no valid backend). That
time is spent holding locks (the project's quota lock, node locks, in a boot the compute
node's row its claim updated: that node's heartbeat waits behind it), so it is kept far
under ha_suspect_after (1.6 s). A boot (servers/builds.py) locks the nodes of all its
servers' new volumes ahead, in order with the rest (prepick, lock_order.lock_volumes),
before any compute node row, then forbids waits (forbid_waits): a storage node is only
tried once a compute row is held. Its give-up for held nodes raises Contended
(raise_contended), and builds.create rolls that try back and tries the request again
(a few times, after a short random pause); a lack of room answers at once.

Which node locks the transaction holds is kept in session.info (held_nodes) and only
decides whether a wait is allowed (a lock taken in a savepoint since rolled back is
released by PostgreSQL, so the set may say more than is held: that only forbids waits);
a claim never trusts it for a node's lock, it takes the lock again (a try: immediate
when this transaction holds it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace

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
# How long in all a claim that may not wait for a node's lock keeps trying while every
# node with room is held by other claims, and how long it sleeps between tries: it holds
# locks meanwhile (see above), so far under ha_suspect_after.
CLAIM_WAIT = 0.25
CLAIM_BACKOFF = 0.02
# session.info keys: what this transaction holds (the transaction object is kept with it),
# whether it holds other locks that forbid a wait (a boot's compute node rows), and whether
# a give-up for held nodes is raised (Contended) for the caller to retry the whole try.
_HELD_NODES = "atwill.volume.nodes_held"
_HELD_ROWS = "atwill.volume.rows_held"
_NO_WAITS = "atwill.volume.no_waits"
_RAISES = "atwill.volume.raises_contended"


class Contended(Exception):
    """Every storage node with room was held by other claims for CLAIM_WAIT: a give-up for
    lock contention, not for a lack of room (raised only where raise_contended asked for
    it: a boot, which rolls its try back and tries the request again)."""


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


def _this_transaction(session: Session, key: str) -> set[str]:
    """A set kept in session.info for the session's current transaction only."""
    tx = session.get_transaction()
    kept = session.info.get(key)
    if kept is None or kept[0] is not tx:
        kept = (tx, set())
        session.info[key] = kept
    return kept[1]


def held_nodes(session: Session) -> set[str]:
    """The nodes whose capacity locks this transaction holds (PostgreSQL)."""
    return _this_transaction(session, _HELD_NODES)


def rows_locked(session: Session, volume_ids: Iterable[str]) -> None:
    """Note that this transaction holds these volume rows (lock_order.py): after that a
    node's lock is only tried, never waited for."""
    _this_transaction(session, _HELD_ROWS).update(volume_ids)


def may_wait(session: Session) -> bool:
    """Whether waiting for a node's lock keeps lock_order.py's order: nothing after it
    (no node lock, no volume row, no compute node row) is held yet."""
    return not held_nodes(session) and not _this_transaction(session, _HELD_ROWS) \
        and not _this_transaction(session, _NO_WAITS)


def forbid_waits(session: Session) -> None:
    """From now on this transaction only tries nodes' locks: it is about to hold locks
    that come after them in the order (a boot's compute node rows, servers/builds.py)."""
    _this_transaction(session, _NO_WAITS).add("yes")


def raise_contended(session: Session) -> None:
    """A give-up for held nodes raises Contended in this transaction (instead of leaving
    the volume in error as no valid backend): the caller retries."""
    _this_transaction(session, _RAISES).add("yes")


def stop_raising(session: Session) -> None:
    """The tries raise_contended was asked for are over: a later give-up for held nodes in
    this transaction leaves its volume in error, as before."""
    _this_transaction(session, _RAISES).clear()


def forget(session: Session) -> None:
    """After a savepoint opened before any node lock was rolled back: PostgreSQL released
    every node lock and row lock taken in it, and nothing here forbids a wait any more."""
    for key in (_HELD_NODES, _HELD_ROWS, _NO_WAITS, _RAISES):
        _this_transaction(session, key).clear()


def _contended(session: Session) -> None:
    if _this_transaction(session, _RAISES):
        raise Contended(NO_BACKEND)


def lock_nodes(session: Session, node_ids: Iterable[str]) -> None:
    """Hold the nodes' capacity until commit: what is read after this is current, and no
    other transaction claims on them before this one commits."""
    dialect = session.get_bind().dialect.name
    for node_id in sorted(set(node_ids)):
        if dialect == "postgresql":
            session.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_SPACE}, "
                                 "hashtext(:node))"), {"node": node_id})
            held_nodes(session).add(node_id)
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


def try_lock_node(session: Session, node_id: str) -> bool:
    """The node's capacity lock if no other transaction holds it (PostgreSQL), no wait."""
    got = bool(session.scalar(text(f"SELECT pg_try_advisory_xact_lock({_LOCK_SPACE}, "
                                   "hashtext(:node))"), {"node": node_id}))
    if got:
        held_nodes(session).add(node_id)
    return got


def try_lock_nodes(session: Session, node_ids: Iterable[str]) -> set[str]:
    """Those of the nodes whose capacity locks could be had now (PostgreSQL), no wait."""
    return {n for n in sorted(set(node_ids)) if try_lock_node(session, n)}


def ranked(candidates: Iterable[Backend], size_gb: int) -> list[Backend]:
    """The backends with room for size_gb, pick()'s choice first, then in its order."""
    fitting = [b for b in candidates if b.room_gb >= size_gb]
    return sorted(fitting, key=lambda b: (b.room_gb - size_gb, b.name), reverse=True)


def prepick(session: Session, sizes: Iterable[int]) -> set[str]:
    """The nodes new volumes of these sizes would go to, one after the other, from what is
    committed now (unlocked): what a boot locks ahead of its volume rows; place() checks
    each again under the lock."""
    live = {b.node_id: b for b in backends(session)}
    chosen: set[str] = set()
    for size in sizes:
        best = pick(live.values(), size)
        if best is not None:
            chosen.add(best.node_id)
            live[best.node_id] = replace(best, allocated_gb=best.allocated_gb + size)
    return chosen


def _fits(session: Session, node_id: str, size_gb: int) -> bool:
    """Read under the node's lock: whether it still takes new volumes and has the room."""
    node = session.get(Node, node_id, populate_existing=True)
    return takes_new(node) and room_on(session, node_id) >= size_gb


def _claim(session: Session, size_gb: int) -> Backend | None:
    """PostgreSQL: the best node with room, locked (only it), its room read again."""
    full: set[str] = set()
    deadline = time.monotonic() + CLAIM_WAIT
    while True:
        order = ranked([b for b in backends(session) if b.node_id not in full], size_gb)
        if not order:
            return None
        for backend in order:
            # Taken again even if noted as held (immediate then): a savepoint rolled back
            # since may have released it. Its room is read under the lock either way.
            if try_lock_node(session, backend.node_id):
                if _fits(session, backend.node_id, size_gb):
                    return backend
                full.add(backend.node_id)
                break  # rank again: others may have changed meanwhile
        else:  # every node with room is being claimed on by another transaction
            if may_wait(session):
                best = order[0].node_id
                lock_nodes(session, [best])
                if _fits(session, best, size_gb):
                    return order[0]
                full.add(best)
            elif time.monotonic() >= deadline:
                _contended(session)
                return None
            else:
                time.sleep(CLAIM_BACKOFF)


def place(session: Session, vol: Volume) -> None:
    """Give vol a node with room (claimed), or leave it in error as Cinder's scheduler does."""
    if session.get_bind().dialect.name == "postgresql":
        chosen = _claim(session, vol.size)
    else:
        # SQLite: one write lock for the whole database (lock_nodes takes it with the
        # first node); everything read after it is current.
        lock_nodes(session, [n.id for n in storage_nodes(session) if takes_new(n)])
        chosen = pick(backends(session), vol.size)
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
    if session.get_bind().dialect.name != "postgresql" or may_wait(session):
        lock_nodes(session, [node_id])
    elif not _try_for_a_while(session, node_id):  # a wait could close a cycle
        _contended(session)
        return False
    node = session.get(Node, node_id, populate_existing=True)
    return takes_new(node) and room_on(session, node_id) >= size_gb


def _try_for_a_while(session: Session, node_id: str) -> bool:
    """The node's lock tried until CLAIM_WAIT has passed (immediate when this transaction
    holds it)."""
    deadline = time.monotonic() + CLAIM_WAIT
    while not try_lock_node(session, node_id):
        if time.monotonic() >= deadline:
            return False
        time.sleep(CLAIM_BACKOFF)
    return True


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
