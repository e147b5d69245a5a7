"""The cluster revision: one counter every change to any node's desired state moves.

It sits below the cluster, network, servers, volume and HA packages, which all move it,
so none of them imports another for it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from . import revision_signal
from .db.models import ClusterRevision


def revision(session: Session) -> int:
    row = session.get(ClusterRevision, 1)
    return row.revision if row else 0


def bump(session: Session) -> int:
    """Move the cluster revision so every agent's long-poll returns."""
    row = session.get(ClusterRevision, 1, with_for_update=True)
    if row is None:
        row = ClusterRevision(id=1, revision=0)
        session.add(row)
    row.revision += 1
    session.flush()
    revision_signal.mark(session)
    return row.revision
