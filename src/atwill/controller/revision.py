"""Revisions: a clock every change to a node's desired state moves, and per node the clock
of the last change that concerned it.

A change bumps with the nodes it concerns (`nodes=`, or `of=` a server, or `touched=`
for "the nodes of the network rows I changed"); without them it concerns every node.
The clock moves once, when the transaction commits: the nodes concerned are then known
(node_scope adds those of the network and volume rows changed meanwhile), and the row
lock on the clock is held only from there to the commit, so clock order is commit order.
That is the outermost transaction's commit: a savepoint released moves nothing, and one
rolled back forgets the bumps made in it, not those made before it (savepoint_info).

A node's revision is the later of the clock of the last change for everyone and its own
(NodeRevision): one number space with the old global revision, so an agent's `after`
keeps its meaning across releases, restarts and workers. It sits below the cluster,
network, servers, volume and HA packages, which all move it, so none imports another.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from . import node_scope, revision_signal, savepoint_info
from .db.models import ClusterRevision, Instance, NodeRevision

CONCERN = "atwill.revision_concern"
# ATWILL_NODE_REVISIONS=off: every change for every node, long-polls re-reading each
# second and no snapshots, as before per-node revisions (bench fleet compares the two).
EVERY_CHANGE_FOR_ALL = os.environ.get("ATWILL_NODE_REVISIONS", "on") == "off"


class _Everyone:
    """The concern of a change for every node."""


EVERYONE = _Everyone()
Concern = set[str] | _Everyone
savepoint_info.keep(CONCERN, lambda c: c if c is EVERYONE else set(c))
savepoint_info.keep(CONCERN + ".strict")


def revision(session: Session) -> int:
    """The clock: moves with every change (the controller's own overlay follows it)."""
    row = session.get(ClusterRevision, 1)
    return row.revision if row else 0


def node_revision(session: Session, node_id: str) -> int:
    row = session.get(ClusterRevision, 1)
    own = session.get(NodeRevision, node_id)
    return max(row.everyone_at if row else 0, own.revision if own else 0)


def bump(session: Session, nodes: Iterable[str] | None = None, *,
         of: Instance | None = None, action: str | None = None, touched: bool = False
         ) -> None:
    """Wake, once this transaction commits, the agents of the nodes it concerns: `nodes`
    (ids), or those of server `of` (doing `action`), or with `touched` those of the
    network rows it changed; with none of them, every node. Rows it changed in the
    tables node_scope follows add their nodes in every case."""
    if of is not None:
        named = node_scope.of_instance(session, of, action)
    elif touched:
        named = set()
    else:
        named = None if nodes is None else set(nodes)
    concern = session.info.get(CONCERN)
    if named is None or EVERY_CHANGE_FOR_ALL or concern is EVERYONE:
        session.info[CONCERN] = EVERYONE
    else:
        session.info[CONCERN] = (concern or set()) | named
        if touched:
            session.info[CONCERN + ".strict"] = True


def _concern(session: Session) -> Concern | None:
    """What this transaction's bumps concern, the rows it changed included."""
    if CONCERN not in session.info:
        return None
    session.flush()  # node_scope sees the last changes too
    concern = session.info.pop(CONCERN)
    strict = session.info.pop(CONCERN + ".strict", False)
    if concern is EVERYONE:
        return EVERYONE
    more = node_scope.touched(session, strict)
    return EVERYONE if more is None else concern | more


def _advance(session: Session, concern: Concern) -> int:
    row = session.get(ClusterRevision, 1, with_for_update=True, populate_existing=True)
    if row is None:
        row = ClusterRevision(id=1, revision=0, everyone_at=0)
        session.add(row)
    row.revision += 1
    if isinstance(concern, _Everyone):
        row.everyone_at = row.revision
    elif concern:
        # One UPDATE for the nodes that have a row (an UPDATE a row was ~10 ms for 50
        # nodes on PostgreSQL, with the clock's row lock held), an INSERT for the others.
        found = set(session.scalars(select(NodeRevision.node_id).where(
            NodeRevision.node_id.in_(concern))))
        if found:
            session.execute(update(NodeRevision).where(NodeRevision.node_id.in_(found))
                            .values(revision=row.revision))
        session.add_all(NodeRevision(node_id=node_id, revision=row.revision)
                        for node_id in sorted(concern - found))
    session.flush()
    return row.revision


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if not savepoint_info.outermost(session):
        return
    concern = _concern(session)
    if concern is None:
        return
    _advance(session, concern)
    revision_signal.mark(session, None if isinstance(concern, _Everyone) else concern)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    if not savepoint_info.outermost(session):
        return
    session.info.pop(CONCERN, None)
    session.info.pop(CONCERN + ".strict", None)


def changes_since(session: Session, seen: int) -> tuple[int, set[str] | None]:
    """(the clock now, the nodes whose revision moved past `seen`; None: every node).
    The clock is read first: a change committed after it is left for the next call."""
    row = session.get(ClusterRevision, 1)
    clock, everyone_at = (row.revision, row.everyone_at) if row else (0, 0)
    if clock <= seen:
        return clock, set()
    if everyone_at > seen:
        return clock, None
    return clock, set(session.scalars(select(NodeRevision.node_id).where(
        NodeRevision.revision > seen)))
