"""Instances, their actions and events, server groups, PCI claims."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, new_uuid, utcnow


class Instance(Base):
    __tablename__ = "instances"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255), index=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    hostname: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    flavor: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    key_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    key_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    user_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    meta: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    config_drive: Mapped[bool] = mapped_column(Boolean, default=False)
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    requested_networks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    security_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    scheduler_hints: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    node_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    node_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    vm_state: Mapped[str] = mapped_column(String(32), default="building")
    task_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    power_state: Mapped[int] = mapped_column(Integer, default=0)
    desired_power: Mapped[str] = mapped_column(String(16), default="running")
    reboot_serial: Mapped[int] = mapped_column(Integer, default=0)
    reboot_hard: Mapped[bool] = mapped_column(Boolean, default=False)
    rebuild_serial: Mapped[int] = mapped_column(Integer, default=0)
    fault: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    console: Mapped[str] = mapped_column(Text, default="")
    retries: Mapped[int] = mapped_column(Integer, default=0)
    failed_nodes: Mapped[list[str]] = mapped_column(JSON, default=list)
    pci_devices: Mapped[list[str]] = mapped_column(JSON, default=list)
    launch_index: Mapped[int] = mapped_column(Integer, default=0)
    reservation_id: Mapped[str] = mapped_column(String(36), default="")
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    # Nova's locked_by: 'owner' (the instance's project locked it) or 'admin' (another
    # project's admin did, so the owner cannot unlock it).
    locked_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    locked_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # The image a createImage asked of the node and not yet uploaded (None: no snapshot).
    snapshot_image_id: Mapped[str | None] = mapped_column(String(36), nullable=True,
                                                          index=True)
    # The node a create named (None: any), and whether it bypasses the filters (the
    # availability_zone ZONE:HOST form) or only narrows them (2.74's host).
    requested_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    force_host: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A shelved server's snapshot: unshelve boots it, then deletes it.
    shelved_image_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    shelved_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    launched_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    terminated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class InstanceAction(Base):
    __tablename__ = "instance_actions"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    start_time: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class InstanceActionEvent(Base):
    __tablename__ = "instance_action_events"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(
        ForeignKey("instance_actions.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    result: Mapped[str | None] = mapped_column(String(16), nullable=True)
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True)
    start_time: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class ServerGroup(Base):
    __tablename__ = "server_groups"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    policy: Mapped[str] = mapped_column(String(32))
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ServerGroupMember(Base):
    __tablename__ = "server_group_members"
    __table_args__ = (UniqueConstraint("instance_id"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    group_id: Mapped[str] = mapped_column(
        ForeignKey("server_groups.id", ondelete="CASCADE"), index=True)
    instance_id: Mapped[str] = mapped_column(String(36))


class PciClaim(Base):
    """A node's PCI device given to one instance: unique, so never given twice."""

    __tablename__ = "pci_claims"
    __table_args__ = (UniqueConstraint("node_id", "address"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    node_id: Mapped[str] = mapped_column(String(36), index=True)
    address: Mapped[str] = mapped_column(String(32))
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
