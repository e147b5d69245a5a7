"""Peer clouds: who they are, the one-time tokens that pair them, mappings, their images."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, new_uuid, utcnow


class Peer(Base):
    """Another atwill cloud, paired with a peer token; its CA is pinned by hash."""

    __tablename__ = "peers"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(255))
    ca_pem: Mapped[str] = mapped_column(Text)
    ca_hash: Mapped[str] = mapped_column(String(80))
    # What this cloud sends when it calls the peer (the peer keeps only its hash), sealed
    # with a key kept outside the database (peers/seal.py); NULL: paired before sealing.
    credential_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The sha256 of what the peer sends when it calls this cloud.
    inbound_hash: Mapped[str] = mapped_column(String(64), unique=True)
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class PeerToken(Base):
    """A one-time peer token (a join token's shape), stored as the sha256 of its secret."""

    __tablename__ = "peer_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The name the peer that pairs with this token gets here.
    peer_name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    max_uses: Mapped[int] = mapped_column(Integer, default=1)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class PeerMapping(Base):
    """A peer's users (one, or '*') in a peer project act here in a project with a role."""

    __tablename__ = "peer_mappings"
    __table_args__ = (UniqueConstraint("peer_id", "remote_project_domain", "remote_project",
                                       "remote_user_domain", "remote_user",
                                       name="uq_peer_mappings_rule"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    peer_id: Mapped[str] = mapped_column(ForeignKey("peers.id", ondelete="CASCADE"),
                                         index=True)
    remote_project: Mapped[str] = mapped_column(String(255))
    remote_user: Mapped[str] = mapped_column(String(255))
    # The peer's domains (id or name) the names above are in: a name names nothing
    # outside its domain.
    remote_project_domain: Mapped[str] = mapped_column(String(255), default="Default")
    remote_user_domain: Mapped[str] = mapped_column(String(255), default="Default")
    local_project_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class PeerImage(Base):
    """A peer's image a local server boots from: what its node needs to fetch and check."""

    __tablename__ = "peer_images"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    peer_id: Mapped[str] = mapped_column(ForeignKey("peers.id", ondelete="CASCADE"),
                                         index=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(32), nullable=True)
    os_hash_algo: Mapped[str | None] = mapped_column(String(64), nullable=True)
    os_hash_value: Mapped[str | None] = mapped_column(String(128), nullable=True)
    disk_format: Mapped[str | None] = mapped_column(String(32), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    min_ram: Mapped[int] = mapped_column(Integer, default=0)
    min_disk: Mapped[int] = mapped_column(Integer, default=0)
    properties: Mapped[dict] = mapped_column(JSON, default=dict)
    # The token of the last caller who booted from it (the node's fetch goes to the peer
    # as that caller, as Nova downloads from Glance with the user's token), sealed as the
    # peer's credential is.
    fetch_token_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
