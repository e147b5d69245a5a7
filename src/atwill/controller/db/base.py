"""Declarative base, id and time helpers shared by every table."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def new_id() -> str:
    """Keystone-style id: 32 hex characters."""
    return uuid.uuid4().hex


def new_uuid() -> str:
    return str(uuid.uuid4())


def utcnow() -> dt.datetime:
    """Naive UTC, the same on SQLite and PostgreSQL."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def iso(value: dt.datetime | None) -> str | None:
    """Compute, image and network timestamps: YYYY-MM-DDTHH:MM:SSZ."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None
