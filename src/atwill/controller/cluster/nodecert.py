"""Which node a client certificate speaks for, and the answers for removed or renewed ones.

A removed node is told so with a machine-readable error type, not only a message:
its agent stops its VMs (keeping their disks) on ``node_removed``, and renews its
certificate on ``certificate_superseded``. No caller matches on message text.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import ApiError, Forbidden, Unauthorized
from ...pki import serial_of
from ..db.base import utcnow
from ..db.models import Node, RevokedCertificate
from ..peercert import client_cert
from ..service import keystone_error

log = logging.getLogger("atwill.cluster")

NODE_REMOVED = "node_removed"
CERTIFICATE_SUPERSEDED = "certificate_superseded"
# How long the certificate a renewal replaced may still renew (its answer may be lost).
RENEWAL_GRACE = dt.timedelta(days=1)


class NodeRemoved(Forbidden):
    """403 with error type node_removed: this node is no longer part of the cloud."""

    kind = NODE_REMOVED


class CertificateSuperseded(Forbidden):
    """403 with error type certificate_superseded: a newer certificate was issued."""

    kind = CERTIFICATE_SUPERSEDED


def cluster_error(err: ApiError) -> dict[str, Any]:
    """Keystone's envelope, plus "type" for the errors an agent must act on."""
    body = keystone_error(err)
    kind = getattr(err, "kind", None)
    if kind:
        body["error"]["type"] = kind
    return body


def calling_node(session: Session, request: Request, node_id: str,
                 allow_superseded: bool = False) -> Node:
    """The node node_id, if the request's client certificate is that node's."""
    der = client_cert(request.scope)
    if der is None:
        raise Unauthorized("This call needs the node's client certificate (mutual TLS).")
    serial = serial_of(der)
    node = session.get(Node, node_id)
    if node is not None and node.cert_serial == serial:
        return node
    revoked = session.get(RevokedCertificate, serial)
    if node is None:
        if session.scalar(select(Node.id).where(Node.cert_serial == serial)) is not None:
            raise Forbidden("The client certificate does not belong to this node.")
        name = revoked.node_name if revoked else "?"
        log.warning("removed node %s (node id %s, certificate %s) called; told it was removed",
                    name, node_id, serial)
        raise NodeRemoved(f"Node {name} ({node_id}) was removed from this cloud; its "
                          f"certificate {serial} is revoked. Its agent stops its VMs and "
                          "keeps their disks until the operator runs 'atwill leave' "
                          "(or 'atwill leave --purge') on that host.")
    if revoked is not None and superseded(session, revoked, node):
        if allow_superseded:
            return node
        raise CertificateSuperseded(f"Certificate {serial} of node {node.name} was replaced "
                                    "by a renewed one; renew it again or use the new one.")
    raise Forbidden("The client certificate does not belong to this node.")


def superseded(session: Session, revoked: RevokedCertificate, node: Node) -> bool:
    """The certificate this node's latest renewal replaced, within the grace period.

    Only that one, so a renewal whose answer was lost can be asked again, but a leaked
    older certificate of the node's key never renews. A removal revokes before the next
    node of that name is created, a renewal after: an earlier node's certificate never
    passes for this node's.
    """
    if revoked.node_name != node.name or revoked.revoked_at <= node.created_at:
        return False
    if utcnow() - revoked.revoked_at > RENEWAL_GRACE:
        return False
    return latest_replaced(session, node) == revoked.serial


def latest_replaced(session: Session, node: Node) -> str | None:
    """The serial of the certificate this node's latest renewal replaced, if any."""
    return session.scalar(
        select(RevokedCertificate.serial)
        .where(RevokedCertificate.node_name == node.name,
               RevokedCertificate.revoked_at > node.created_at)
        .order_by(RevokedCertificate.revoked_at.desc()).limit(1))
