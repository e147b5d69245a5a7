"""Compute tables: flavors with extra specs and access, keypairs, quotas, nodes, aggregates."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    event,
    false,
    literal_column,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, new_uuid, utcnow


class Flavor(Base):
    __tablename__ = "flavors"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    flavorid: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    ram: Mapped[int] = mapped_column(Integer)
    vcpus: Mapped[int] = mapped_column(Integer)
    disk: Mapped[int] = mapped_column(Integer, default=0)
    ephemeral: Mapped[int] = mapped_column(Integer, default=0)
    swap: Mapped[int] = mapped_column(Integer, default=0)
    rxtx_factor: Mapped[float] = mapped_column(Float, default=1.0)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    extra_specs: Mapped[list[FlavorExtraSpec]] = relationship(
        cascade="all, delete-orphan", lazy="selectin")
    projects: Mapped[list[FlavorAccess]] = relationship(
        cascade="all, delete-orphan", lazy="selectin")

    @property
    def specs(self) -> dict[str, str]:
        return {s.key: s.value for s in self.extra_specs}


class FlavorExtraSpec(Base):
    __tablename__ = "flavor_extra_specs"
    __table_args__ = (UniqueConstraint("flavor_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    flavor_id: Mapped[int] = mapped_column(ForeignKey("flavors.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(String(255))


class FlavorAccess(Base):
    __tablename__ = "flavor_access"
    __table_args__ = (UniqueConstraint("flavor_id", "project_id"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    flavor_id: Mapped[int] = mapped_column(ForeignKey("flavors.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(String(64))


class Keypair(Base):
    __tablename__ = "keypairs"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16), default="ssh")
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Quota(Base):
    """A project's hard limit for one resource (absent: the default class applies)."""

    __tablename__ = "quotas"
    __table_args__ = (UniqueConstraint("project_id", "resource"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    resource: Mapped[str] = mapped_column(String(64))
    hard_limit: Mapped[int] = mapped_column(Integer)


class QuotaClass(Base):
    __tablename__ = "quota_classes"
    __table_args__ = (UniqueConstraint("class_name", "resource"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    class_name: Mapped[str] = mapped_column(String(255))
    resource: Mapped[str] = mapped_column(String(64))
    hard_limit: Mapped[int] = mapped_column(Integer)


class Node(Base):
    """A compute node: one hypervisor and one nova-compute-shaped service."""

    __tablename__ = "nodes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    service_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="up")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The node's cinder-volume service, apart from its nova-compute one (Cinder's services
    # are separate): a disabled one takes no new volumes (volume/placement.py).
    volume_disabled: Mapped[bool] = mapped_column(Boolean, default=False,
                                                  server_default=false())
    volume_disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Cinder's services.frozen (os-services freeze/thaw, volume/freeze.py).
    volume_frozen: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    availability_zone: Mapped[str] = mapped_column(String(255), default="nova")
    host_ip: Mapped[str] = mapped_column(String(64), default="")
    vcpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    local_gb: Mapped[int] = mapped_column(Integer, default=0)
    vcpus_used: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb_used: Mapped[int] = mapped_column(Integer, default=0)
    local_gb_used: Mapped[int] = mapped_column(Integer, default=0)
    running_vms: Mapped[int] = mapped_column(Integer, default=0)
    hypervisor_type: Mapped[str] = mapped_column(String(32), default="QEMU")
    hypervisor_version: Mapped[int] = mapped_column(Integer, default=0)
    inventory: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    forced_down: Mapped[bool] = mapped_column(Boolean, default=False)
    overlay_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    wireguard_public_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    overlay_port: Mapped[int] = mapped_column(Integer, default=51820)
    endpoint_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    cert_serial: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    overlay_status: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    host_status: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_heartbeat: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # What the HA monitor concluded from heartbeat age: up | suspect | down (core/ha_health).
    health: Mapped[str] = mapped_column(String(16), default="up", server_default="up")
    health_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # Fencing of a down node: None (not tried) | pending | ok | failed. fenced_at is set
    # only once the node is known powered off (or forced down / confirmed by an operator);
    # evacuation never starts before it, and a rejoin clears all four.
    fence_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    fence_method: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fence_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    fenced_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # The longest recent gap between two heartbeats (seconds, decaying): a node on a slow,
    # lossy link gets a longer down threshold than one on a LAN (core/ha_health).
    heartbeat_gap_peak: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # The order (epoch, seq) of the last ordered heartbeat applied (migration 0034,
    # core/beat_order): a lower one arriving late changes nothing. NULL: none yet.
    beat_epoch: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    beat_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Evacuation(Base):
    """An instance rebuilt away from a failed node; its stale copy there is still to go."""

    __tablename__ = "evacuations"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    source_node_id: Mapped[str] = mapped_column(String(36), index=True)
    source_node_name: Mapped[str] = mapped_column(String(255))
    dest_node_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # pending (asked) | rebuilding (placed elsewhere) | done | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(String(16), default="manual")  # manual | auto
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Microversion 2.95: a server evacuated while stopped is stopped again once rebuilt.
    stop_after: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When the source node's agent reported the local copy destroyed.
    cleaned_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


# The scheduler's shortlist orders usable nodes by free RAM at the default allocation
# ratio; with these indexes the database reads the first few in order instead of sorting
# every node. The ratio is a literal so that the query's expression matches the index's.
DEFAULT_RAM_RATIO = "1.5"
FREE_RAM = Node.memory_mb * literal_column(DEFAULT_RAM_RATIO) - Node.memory_mb_used
Index("ix_nodes_free_ram_spread", FREE_RAM.desc(), Node.name)
Index("ix_nodes_free_ram_pack", FREE_RAM, Node.name)


class Aggregate(Base):
    """A host aggregate: a named group of nodes with metadata (one key may be its zone)."""

    __tablename__ = "aggregates"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    hosts: Mapped[list[AggregateHost]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AggregateHost.id")
    metadata_items: Mapped[list[AggregateMetadata]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AggregateMetadata.key")

    @property
    def meta(self) -> dict[str, str]:
        return {m.key: m.value for m in self.metadata_items}

    @property
    def availability_zone(self) -> str | None:
        return self.meta.get("availability_zone")


class AggregateHost(Base):
    """A node in an aggregate, by name as in Nova, so a node that rejoins stays in it."""

    __tablename__ = "aggregate_hosts"
    __table_args__ = (UniqueConstraint("aggregate_id", "host"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    aggregate_id: Mapped[int] = mapped_column(
        ForeignKey("aggregates.id", ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(String(255), index=True)


class AggregateMetadata(Base):
    __tablename__ = "aggregate_metadata"
    __table_args__ = (UniqueConstraint("aggregate_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    aggregate_id: Mapped[int] = mapped_column(
        ForeignKey("aggregates.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(String(255))


AGGREGATE_ZONE = (
    select(AggregateMetadata.value)
    .join(AggregateHost, AggregateHost.aggregate_id == AggregateMetadata.aggregate_id)
    .where(AggregateMetadata.key == "availability_zone", AggregateHost.host == bindparam("host"))
    .limit(1))


@event.listens_for(Node, "before_insert")
def _zone_from_aggregates(_mapper: Any, connection: Connection, node: Node) -> None:
    # Node.availability_zone is kept equal to its aggregates' zone (every reader, the
    # scheduler's index included, reads the column). Aggregates name hosts, and a node that
    # rejoins is a new row: it takes its zone back here, whoever inserts it.
    zone = connection.scalar(AGGREGATE_ZONE, {"host": node.name})
    if zone is not None:
        node.availability_zone = zone
