"""Freezing a storage node's cinder-volume (PUT /v3/os-services/freeze and thaw).

As Cinder (volume/api.py freeze_host/thaw_host and the volume manager's): a freeze marks
the service frozen and disabled with the reason "frozen"; a frozen backend takes no new
volumes (placement.takes_new, even once enabled again) and refuses the management
operations Cinder refuses on it (assert_not_frozen: deleting a volume, creating or
deleting a snapshot), while its volumes stay attached and readable. A thaw clears the
frozen flag and enables the service (reason ""). Freezing a frozen service, or thawing
one that is not, is Cinder's 400. failover_host is refused as Cinder refuses it for a
backend without replication (every one here: replication_status "disabled").
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ...core.errors import BadRequest
from ...core.volume_service_update import BackendAction
from ..db.models import Node
from .placement import storage_nodes

FROZEN = ("Invalid input received: Modification operations are not allowed on frozen "
          "storage backends.")


def is_frozen(session: Session, node_id: str | None) -> bool:
    node = session.get(Node, node_id) if node_id is not None else None
    return node is not None and node.volume_frozen


def assert_not_frozen(session: Session, node_id: str | None) -> None:
    if is_frozen(session, node_id):
        raise BadRequest(FROZEN)


def _service(session: Session, act: BackendAction) -> Node:
    """The one cinder-volume the body names (host, or host@atwill), or Cinder's 400."""
    if act.cluster is not None:  # no clusters here
        raise BadRequest(f"No service found with cluster={act.cluster}")
    name, _, backend = (act.host or "").partition("@")
    if backend in ("", "atwill"):
        for node in storage_nodes(session):
            if node.name == name:
                return node
    raise BadRequest(f"No service found with host={act.host}")


def _unchanged(field: str, node: Node, expected: str, up: bool = False) -> BadRequest:
    must = "and must be up " if up else ""
    return BadRequest(f"Invalid input received: No service could be changed: {field} in "
                      f"['{node.name}@atwill'] must be {expected} {must}to failover.")


def apply(session: Session, act: BackendAction) -> None:
    node = _service(session, act)
    if act.action == "failover_host":
        raise _unchanged("replication_status", node, "['enabled', 'failed-over']", up=True)
    freeze = act.action == "freeze"
    if node.volume_frozen == freeze:
        raise _unchanged("frozen", node, str(not freeze))
    node.volume_frozen = freeze
    node.volume_disabled, node.volume_disabled_reason = freeze, "frozen" if freeze else ""
