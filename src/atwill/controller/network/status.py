"""Port status: observed from the instance a port serves, or as an agent recorded it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.network import Port
from ..db.servers import Instance
from .views import port as port_view

STATUSES = ("ACTIVE", "DOWN", "BUILD", "ERROR")
# Nova's power_state RUNNING, set from the node's report that QEMU runs the instance.
RUNNING = 1


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


def observed(session: Session, ports: list[Port]) -> dict[str, str]:
    """Status of instance ports: ACTIVE while the instance runs on the node the port is
    bound to (the node plumbs a port's tap before it starts the VM, and reports the VM
    running only once QEMU runs with it), DOWN otherwise."""
    bound = [p for p in ports if p.device_owner.startswith("compute:") and p.host_id]
    if not bound:
        return {}
    running = set(session.execute(select(Instance.id, Instance.node_name).where(
        Instance.id.in_({p.device_id for p in bound}), Instance.power_state == RUNNING,
        Instance.deleted.is_(False))).tuples())
    return {p.id: "ACTIVE" if (p.device_id, p.host_id) in running else "DOWN"
            for p in bound}


def views(session: Session, ports: list[Port], admin: bool) -> list[dict[str, Any]]:
    """Ports as the API shows them, with the observed status of instance ports."""
    seen = observed(session, ports)
    return [{**port_view(p, admin), **({"status": seen[p.id]} if p.id in seen else {})}
            for p in ports]
