"""Cluster tables: join tokens, overlay addresses, revoked certificates, the revisions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, new_uuid, utcnow


class JoinToken(Base):
    """A join token, stored as the sha256 of its secret."""

    __tablename__ = "join_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    max_uses: Mapped[int] = mapped_column(Integer, default=1)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # Host aggregates (names) a node that joins with this token is put into.
    aggregates: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")


class OverlayAddress(Base):
    """A node name's overlay address, kept across removal so a rejoin gets it back."""

    __tablename__ = "overlay_addresses"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), unique=True)


class RevokedCertificate(Base):
    __tablename__ = "revoked_certificates"
    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_name: Mapped[str] = mapped_column(String(255))
    revoked_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ClusterRevision(Base):
    """One row: the clock every change moves (revision), and the clock of the last change
    that concerned every node (everyone_at); a node's revision is the later of that and
    its own NodeRevision."""

    __tablename__ = "cluster_revision"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    everyone_at: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class NodeRevision(Base):
    """The clock of the last change that concerned this node alone (or a few nodes)."""

    __tablename__ = "node_revisions"
    node_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0, index=True)
