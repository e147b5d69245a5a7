"""A volume's export handed from a live migration's source node to its destination.

A volume is served by one qemu-storage-daemon (two opening one qcow2 is unsafe), so
while a server with volumes live-migrates, that daemon admits both nodes: the source's
attachment key, and a key made for the destination alone (Nova's second attachment, for
the destination host). On success the destination's key becomes the attachment's and
the source's is revoked; on failure the destination's is dropped. Pure: no database,
no files.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

PREFIX = "atwill-att-"


def identity(attachment_id: str, migration_id: int) -> str:
    """The TLS-PSK username the destination's QEMU presents during migration
    migration_id (another than the source's: a keys file finds a user's first line)."""
    return f"{PREFIX}{attachment_id}-lm{int(migration_id)}"


def key(volume_key: str, attachment_id: str) -> str:
    """The destination's key for the attachment (64 hex digits), derived from the
    migration's volume key: a secret of its own that the controller gives only to the
    destination and the storage nodes. Never from the migration's TLS key, which the
    source holds too: the source could then compute the key that is the attachment's
    once the server left it, and go on reading and writing the volume."""
    return hmac.new(volume_key.encode(), attachment_id.encode(),
                    hashlib.sha256).hexdigest()


def destination_psk(volume_key: str, attachment_id: str,
                    migration_id: int) -> dict[str, str]:
    """The destination's {"identity", "key"} for one attachment, as a volume entry's psk."""
    return {"identity": identity(attachment_id, migration_id),
            "key": key(volume_key, attachment_id)}


def moved_identity(attachment_id: str, named: object) -> str | None:
    """named when it is the identity a live migration of this attachment gave it (what
    the controller itself stores); None for anything else, such as another attachment's
    identity, which would shadow that one's line in an export's keys file."""
    if not isinstance(named, str):
        return None
    migration = named.removeprefix(f"{PREFIX}{attachment_id}-lm")
    return named if migration != named and migration.isdigit() and migration.isascii() \
        else None


def psk_line(psk: dict[str, str]) -> str:
    """psk as an export's keys line ("identity:hexkey")."""
    return f"{psk['identity']}:{psk['key']}"


def admits(export: Any, wanted: str) -> bool:
    """Whether a storage node's reported export ({"port", "host", "identities"}) admits
    the TLS-PSK username wanted."""
    if not isinstance(export, dict):
        return False
    listed = export.get("identities")
    return isinstance(listed, list) and wanted in listed


def identities(lines: Iterable[str]) -> list[str]:
    """The usernames of an export's keys lines, for its report (never the keys)."""
    return sorted(line.split(":", 1)[0] for line in lines)


def successor(record_psk: Iterable[str], wanted_psk: Iterable[str]) -> bool:
    """Whether an export no longer wanted for its node hands over to a wanted export of
    the same volume for another node (not yet served): each key the new one wants was
    already admitted by it, as only a live migration's destination is."""
    have, want = set(record_psk), set(wanted_psk)
    return bool(want) and want <= have
