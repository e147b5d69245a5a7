"""Nova's migration records (os-migrations): live migrations, cold migrations, resizes."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, new_uuid, utcnow


class Migration(Base):
    """One move of an instance between nodes, with its progress as the source reports it."""

    __tablename__ = "migrations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    instance_uuid: Mapped[str] = mapped_column(String(36), index=True)
    source_compute: Mapped[str | None] = mapped_column(String(255), nullable=True)
    source_node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    source_node_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    dest_compute: Mapped[str | None] = mapped_column(String(255), nullable=True)
    dest_node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    dest_node_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    # The destination's overlay address (Nova: the destination host's IP).
    dest_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(32), default="queued", index=True)
    migration_type: Mapped[str] = mapped_column(String(32), default="live-migration")
    old_instance_type_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    new_instance_type_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    memory_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    memory_processed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    memory_remaining: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    disk_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    disk_processed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    disk_remaining: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # What the destination's agent reported once its incoming QEMU waits: the port of
    # its NBD export of the new disk, and of QEMU's incoming migration stream.
    nbd_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    incoming_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Asked by force_complete (pause the guest so it converges) and by abort.
    force_complete: Mapped[bool] = mapped_column(Boolean, default=False,
                                                 server_default=false())
    abort_requested: Mapped[bool] = mapped_column(Boolean, default=False,
                                                  server_default=false())
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The pre-shared key of this migration's TLS (memory stream and disk mirror), given
    # to its source and destination only; never shown by the API.
    tls_key: Mapped[str | None] = mapped_column(String(64), nullable=True,
                                                default=lambda: secrets.token_hex(32))
    # The secret the destination's volume keys are made from (core/volume_handover.py),
    # given to the destination and the volumes' storage nodes only: never to the source,
    # which holds tls_key and would otherwise compute the key that becomes the
    # attachment's once it completes. Cleared with tls_key when the migration ends.
    volume_key: Mapped[str | None] = mapped_column(String(64), nullable=True,
                                                   default=lambda: secrets.token_hex(32))
    # A cold migration's or resize's flavors as snapshotted (the instance's flavor before,
    # and the one it gets on the destination), and when it finished (VERIFY_RESIZE).
    old_flavor: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    new_flavor: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True,
                                                           onupdate=utcnow)
