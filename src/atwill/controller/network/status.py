"""Port status as reported by agents (the API only ever sets DOWN at creation)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..db.network import Port

STATUSES = ("ACTIVE", "DOWN", "BUILD", "ERROR")


def set_port_status(session: Session, port_id: str, status: str) -> bool:
    """Record an agent's view of a port; False when the port no longer exists.

    Status is an observation, not desired state, so the cluster revision stays.
    """
    if status not in STATUSES:
        raise ValueError(f"Port status must be one of {', '.join(STATUSES)}, not {status!r}.")
    port = session.get(Port, port_id)
    if port is None:
        return False
    if port.status != status:
        port.status = status
        port.touch()
        session.flush()
    return True
