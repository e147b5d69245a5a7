"""Compute nodes seen as Nova services and hypervisors: ids, states and lookups."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, NotFound
from ...core.microversion import Version
from .. import controllers
from ..db.base import iso, utcnow
from ..db.compute import Node
from ..db.models import ControllerRecord

BINARY = "nova-compute"


def legacy_id(ident: str) -> int:
    """The integer id shown before 2.53, derived from the UUID so it is stable."""
    return int(uuid.UUID(ident).hex[:7], 16)


def shown_id(ident: str, version: Version) -> str | int:
    return ident if version >= "2.53" else legacy_id(ident)


def is_up(node: Node) -> bool:
    return node.state == "up" and not node.forced_down


def updated_at(node: Node) -> str | None:
    return iso(node.last_heartbeat or node.updated_at)


def all_nodes(session: Session) -> list[Node]:
    return list(session.scalars(select(Node).order_by(Node.created_at, Node.name)))


def find(session: Session, ident: str, version: Version, column: str, what: str) -> Node:
    """A node by its hypervisor or service id as the client knows it at this version."""
    if version >= "2.53":
        try:
            uuid.UUID(ident)
        except ValueError:
            raise BadRequest(f"Invalid uuid {ident}.") from None
        node = session.scalar(select(Node).where(getattr(Node, column) == ident))
    else:
        node = next((n for n in all_nodes(session)
                     if str(legacy_id(getattr(n, column))) == ident), None)
    if node is None:
        raise NotFound(f"{what} with ID {ident} could not be found.")
    return node


def live_controllers(session: Session) -> list[ControllerRecord]:
    """The controllers seen within controllers.WINDOW: Nova's conductor/scheduler hosts."""
    since = utcnow() - controllers.WINDOW
    return list(session.scalars(select(ControllerRecord).where(
        ControllerRecord.last_seen >= since).order_by(ControllerRecord.public_url)))


def controller_host(record: ControllerRecord) -> str:
    return urlsplit(record.public_url).hostname or record.public_url
