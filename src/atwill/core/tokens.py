"""Token payloads: what a Fernet token carries, packed compactly, no I/O."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import os

TOKEN_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def new_audit_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


@dataclasses.dataclass(frozen=True)
class TokenPayload:
    user_id: str
    methods: tuple[str, ...]
    issued_at: dt.datetime
    expires_at: dt.datetime
    audit_id: str
    project_id: str | None = None
    domain_id: str | None = None
    # Keystone's system scope; its only target is "all".
    system: bool = False

    def pack(self) -> bytes:
        data = {
            "u": self.user_id, "m": list(self.methods),
            "i": self.issued_at.timestamp(), "e": self.expires_at.timestamp(),
            "a": self.audit_id,
        }
        if self.project_id:
            data["p"] = self.project_id
        if self.domain_id:
            data["d"] = self.domain_id
        if self.system:
            data["s"] = "all"
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def unpack(cls, raw: bytes) -> TokenPayload:
        data = json.loads(raw)
        return cls(
            user_id=data["u"], methods=tuple(data["m"]),
            issued_at=dt.datetime.fromtimestamp(data["i"], dt.UTC).replace(tzinfo=None),
            expires_at=dt.datetime.fromtimestamp(data["e"], dt.UTC).replace(tzinfo=None),
            audit_id=data["a"], project_id=data.get("p"), domain_id=data.get("d"),
            system=data.get("s") == "all",
        )

    @property
    def scope(self) -> str:
        if self.system:
            return "system"
        return "project" if self.project_id else "domain" if self.domain_id else "unscoped"


def format_time(value: dt.datetime) -> str:
    """Keystone's token time format; '+00:00' breaks some clients."""
    return value.strftime(TOKEN_TIME_FORMAT)
