"""Fence devices per node (agent, options, encrypted secrets, level) and fencing records."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, new_uuid, utcnow


class FenceDevice(Base):
    """One way to power a node off, tried with the others of its level (all must succeed).

    Devices belong to a node name, not a node row: a node that is removed and
    joins again under its name keeps its BMC.
    """

    __tablename__ = "fence_devices"
    __table_args__ = (UniqueConstraint("node_name", "name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    node_name: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(64))
    level: Mapped[int] = mapped_column(Integer, default=1)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A Fernet token of the secret options' JSON; their names are kept in the clear.
    secrets: Mapped[str | None] = mapped_column(Text, nullable=True)
    secret_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    timeout: Mapped[int] = mapped_column(Integer, default=30)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class FenceEvent(Base):
    """One fence agent run (or a confirmation by hand), as the operator reads it later."""

    __tablename__ = "fence_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_name: Mapped[str] = mapped_column(String(255), index=True)
    device: Mapped[str | None] = mapped_column(String(64), nullable=True)
    agent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(16))
    ok: Mapped[bool] = mapped_column(Boolean)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
