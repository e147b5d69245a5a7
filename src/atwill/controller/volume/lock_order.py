"""The one order in which volume work takes its locks, so that no two transactions each
hold what the other waits for (PostgreSQL would end one with a deadlock error):

1. the project's quota lock (servers/locks.lock_project; a server create takes its own
   first thing, a volume create or extend the volume's project's in usage.charge);
2. the storage nodes' capacity locks (placement.lock_nodes, in node id order);
3. the volume rows, FOR UPDATE, in id order;
4. a boot's compute node rows (the claims' UPDATEs, servers/placement.py): a boot takes
   2 and 3 for all its servers first (server_volumes_boot.lock_ahead, from
   servers/builds.py) and from then on only tries a storage node's lock, never waits;

then the inserts, and the cluster revision last (revision.py, at commit). A server's row
comes before its volumes: an attach holds it FOR KEY SHARE (hold_server), a delete FOR
UPDATE (server_volumes_state.lock_for_delete), a storage node's report that may put
servers in ERROR holds them FOR NO KEY UPDATE before it writes a volume (hold_servers).

A handler that needs a volume's node locked must learn the node before locking the row:
it reads the volume unlocked, takes 1 and 2, locks the row, and tries again should the
volume have moved to another node in between.

A new volume's node is the one placement.place() gives it, and only that node is locked
(not every storage node: creates on different nodes do not wait for each other). A boot
that makes volumes and names existing ones picks the new volumes' nodes first, from an
unlocked read (new_volume_nodes), and locks them in step 2 with the rest; place() then
reads their room again under the lock. Should a node picked so have filled meanwhile,
place() only tries other nodes' locks (never waits: the rows are held), see placement.py;
a boot whose try finds them held past placement.CLAIM_WAIT is rolled back and tried again
(builds.create). A create of several servers picks and locks the nodes of all their
volumes at once, ahead of every compute row.

On SQLite one transaction writes at a time: locking the rows there begins the write
transaction (an update of them), and they are read again after it, so what a handler
decides on is what the last committed writer left (two extends at once: the second sees
the first's "extending").
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ...core.errors import Conflict, NotFound
from ...core.policy import Credentials
from ..db.models import Instance
from ..db.volume import Volume, VolumeSnapshot
from ..servers import locks
from . import placement
from .common import can_read

ATTEMPTS = 3
MOVED = "Volume {id} moved to another storage node while it was being changed; try again."


def _read(session: Session, ids: list[str], lock: bool) -> dict[str, Volume]:
    query = select(Volume).where(Volume.id.in_(ids)).order_by(Volume.id) \
        .execution_options(populate_existing=True)
    if lock:
        if session.get_bind().dialect.name == "sqlite":
            # Begins the write transaction (SQLite's lock), so the read below is current.
            session.execute(update(Volume).where(Volume.id.in_(ids))
                            .values(status=Volume.status)
                            .execution_options(synchronize_session=False))
        else:
            query = query.with_for_update()
            placement.rows_locked(session, ids)
    return {v.id: v for v in session.scalars(query)}


def lock_volumes(session: Session, volume_ids: Iterable[str], nodes: Iterable[str] = (),
                 projects: bool = False) -> dict[str, Volume]:
    """The volumes (those that exist) locked in the order above, their nodes' capacity
    locks held (and nodes', the caller's other claims), their projects' quota locks too
    when projects is set. A Conflict (409) if a volume keeps moving between nodes."""
    ids = sorted(set(volume_ids))
    extra = {n for n in nodes if n}
    for _ in range(ATTEMPTS):
        seen = _read(session, ids, lock=False) if ids else {}
        if projects:
            for project in sorted({v.project_id for v in seen.values()}):
                locks.lock_project(session, project)
        held_nodes = extra | {v.node_id for v in seen.values() if v.node_id}
        placement.lock_nodes(session, held_nodes)
        held = _read(session, ids, lock=True) if ids else {}
        if all(v.node_id is None or v.node_id in held_nodes for v in held.values()) and \
                (not projects or {v.project_id for v in held.values()}
                 <= {v.project_id for v in seen.values()}):
            return held
    raise Conflict(MOVED.format(id=", ".join(ids)))


def volume(session: Session, creds: Credentials, volume_id: str,
           charge: bool = False) -> Volume:
    """One volume the caller may see, locked with its node's capacity (and its project's
    quota when charge: an extend or a snapshot takes some): find_volume's 404 otherwise."""
    held = lock_volumes(session, [volume_id], projects=charge) \
        if isinstance(volume_id, str) else {}
    vol = held.get(volume_id)
    if vol is None or not can_read(creds, vol.project_id):
        raise NotFound(f"Volume {str(volume_id)[:64]} could not be found.")
    return vol


def snapshot_nodes(session: Session, snapshot_ids: Iterable[str]) -> set[str]:
    """The nodes holding these snapshots' volumes (a volume made from one is made there)."""
    ids = [s for s in snapshot_ids if isinstance(s, str)]
    if not ids:
        return set()
    return {n for n in session.scalars(
        select(Volume.node_id).join(VolumeSnapshot, VolumeSnapshot.volume_id == Volume.id)
        .where(VolumeSnapshot.id.in_(ids))) if n}


def new_volume_nodes(session: Session, sizes: Iterable[int]) -> set[str]:
    """The nodes that new volumes of these sizes would be placed on now (step 2's locks of
    a boot that makes them; place() checks each again under its lock)."""
    return placement.prepick(session, sizes)


def hold_server(session: Session, instance_id: str) -> None:
    """Hold a server's row before its volume (this module's order, a server delete's) until
    commit, FOR KEY SHARE: the delete's FOR UPDATE waits for it, a node report's plain
    UPDATE of the row does not (FOR SHARE deadlocked a report of a multiattach volume and
    this server with a reserve of the two). Callers check the server is the caller's
    first (another project's row is not locked) and read it again after."""
    session.execute(select(Instance.id).where(Instance.id == instance_id)
                    .with_for_update(read=True, key_share=True))


def hold_servers(session: Session, instance_ids: Iterable[str]) -> None:
    """Hold the rows of servers a node's report may write after their volumes' (a boot
    failed by its volume), before it writes any volume, FOR NO KEY UPDATE (its UPDATEs'
    strength) in id order: a server's delete holds its row and then its volumes."""
    ids = sorted(set(instance_ids))
    if ids:
        session.execute(select(Instance.id).where(Instance.id.in_(ids)).order_by(Instance.id)
                        .with_for_update(key_share=True))
