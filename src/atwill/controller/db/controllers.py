"""The controllers sharing this database, each as it last said it was alive."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, new_uuid, utcnow


class ControllerRecord(Base):
    """A controller's public URL and when it last refreshed it (controller/controllers.py);
    written by controllers only, never through an API."""

    __tablename__ = "controllers"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    public_url: Mapped[str] = mapped_column(String(255), unique=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    # Its own overlay peer (migration 0031; core/overlay_peers.py checks them): none
    # without an overlay.
    overlay_ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    overlay_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    overlay_endpoint: Mapped[str | None] = mapped_column(String(300), nullable=True)
    overlay_url: Mapped[str | None] = mapped_column(String(255), nullable=True)
