"""The Fernet token keys, shared by every controller of one database (controller/keys.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class TokenKey(Base):
    """One key of the repository, numbered as Keystone's files: 0 is staged, the highest
    is the primary. `sealed` is the key sealed with the key derived from the cluster CA's
    private key (peers/seal.py): a copy of the database alone does not yield it.
    Written by controllers and `atwill keys rotate` only, never through an API."""

    __tablename__ = "token_keys"
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
