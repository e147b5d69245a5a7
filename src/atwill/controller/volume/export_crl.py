"""The revocation list a storage node's NBD exports load (QEMU's x509 ca-crl.pem).

An export admits the one node named in its authorization (CN = the node's name), so a
certificate of a removed node must be refused once a new node joined under that name.
Certificates that a present node's renewal replaced are left out: they are of the
node's current key (refusing them gains nothing), and a QEMU started before the renewal
still presents the old one when it reconnects.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...pki import crl_pem
from ..db.models import Node, RevokedCertificate

_lock = threading.Lock()
# One signed list per set of serials: each signature differs, and agents compare
# serials anyway, but signing at every long-poll answer would be waste.
_signed: dict[tuple[str, tuple[str, ...]], str] = {}


def removed_serials(session: Session) -> list[str]:
    """Serials (hex) of the certificates of removed nodes, sorted.

    A removal revokes before a new node of that name is created, a renewal after."""
    created = {n.name: n.created_at for n in session.scalars(select(Node))}
    return sorted(row.serial for row in session.scalars(select(RevokedCertificate))
                  if row.node_name not in created or row.revoked_at <= created[row.node_name])


def export_crl(session: Session, pki: Path) -> str | None:
    """The signed list (PEM) of removed_serials, or None where this controller holds no CA
    key."""
    if not (pki / "ca-key.pem").exists():
        return None
    key = (str(pki), tuple(removed_serials(session)))
    with _lock:
        if key not in _signed:
            _signed.clear()
            _signed[key] = crl_pem(pki, list(key[1])).decode()
        return _signed[key]
