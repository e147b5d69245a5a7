"""A node's drain as the database records it, so that it outlives the process running it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class NodeDrain(Base):
    """The latest drain of a node (controller/cluster/drain.py): when it began (its
    migrations are those since), how many it moves at once, its last progress, and which
    process runs it (runner, refreshed at each step: a claim gone stale, or of a process
    that died, is taken over by the leader's drain loop)."""

    __tablename__ = "node_drains"
    node_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    since: Mapped[dt.datetime] = mapped_column(DateTime)
    parallel: Mapped[int] = mapped_column(Integer, default=2)
    total: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    runner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
