"""Which availability zones a server may be asked into (Nova's "available" zones)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest
from ..db.models import Node

NOT_AVAILABLE = "The requested availability zone is not available"


def available(session: Session) -> set[str]:
    """Zones with an enabled compute node, as Nova's get_only_available lists them."""
    return set(session.scalars(select(Node.availability_zone).where(
        Node.enabled.is_(True)).distinct()))


def require(session: Session, zone: str) -> None:
    """400 unless zone is available: Nova refuses it at the API, before anything is made."""
    if zone not in available(session):
        raise BadRequest(NOT_AVAILABLE)
