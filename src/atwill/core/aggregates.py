"""Host aggregates' rules as Nova keeps them: metadata keys, zones, and their conflicts.

A host's availability zone is the zone of its aggregates; a host may therefore be in
several aggregates only if those that name a zone name the same one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from . import ha_policy
from .errors import BadRequest
from .text import clean_name, shown

DEFAULT_ZONE = "nova"  # Nova's default_availability_zone: hosts in no zoned aggregate
ZONE_KEY = "availability_zone"
MAX_METADATA = 128  # bounded, as every map the API takes
_KEY = re.compile(r"^[a-zA-Z0-9\-_:. /]{1,255}$")


def zone_name(value: Any, field: str = ZONE_KEY) -> str | None:
    """An availability zone as Nova's schema takes it: text without ':' (host forcing's)."""
    zone = clean_name(value, field)
    if zone is None:
        return None
    if not zone.strip() or ":" in zone:
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {shown(zone)}. "
                         "An availability zone is 1 to 255 characters without ':'.")
    return zone


def metadata_changes(value: Any) -> dict[str, str | None]:
    """set_metadata's map: string keys to a string or null (null unsets the key)."""
    if not isinstance(value, dict):
        raise BadRequest("Invalid input for field/attribute metadata: an object is required.")
    if len(value) > MAX_METADATA:
        raise BadRequest(f"Invalid input for field/attribute metadata: more than "
                         f"{MAX_METADATA} keys.")
    changes: dict[str, str | None] = {}
    for key, item in value.items():
        if not _KEY.match(key):
            raise BadRequest(f"Invalid input for field/attribute metadata. Key {shown(key)} "
                             "must be 1 to 255 letters, digits, spaces or -_:./ characters.")
        if key == ZONE_KEY and item is not None:
            changes[key] = zone_name(item)
        elif key == ha_policy.KEY and item is not None:
            changes[key] = ha_policy.check(item)
        elif key == ha_policy.RESERVED_KEY and item is not None:
            changes[key] = ha_policy.check_reserved(item)
        elif item is None:
            changes[key] = None
        else:
            changes[key] = clean_name(item, f"metadata.{key}")
    return changes


def merged(current: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """current with changes applied: a None value removes its key."""
    out = dict(current)
    for key, item in changes.items():
        if item is None:
            out.pop(key, None)
        else:
            out[key] = item
    return out


def conflicting_zones(zone: str, others: Iterable[tuple[int, str]], own_id: int) -> list[str]:
    """Zones of the hosts' other aggregates (id, zone) that differ from zone."""
    return [other for agg_id, other in others if agg_id != own_id and other != zone]


def host_zone(zones: Iterable[str]) -> str:
    """A host's zone from its aggregates' zones (they agree: conflicts are refused)."""
    return next(iter(sorted(set(zones))), DEFAULT_ZONE)
