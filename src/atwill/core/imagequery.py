"""Image list query parameters: filters, sorting and pagination, parsed and checked."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from .errors import BadRequest

SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id",
             "created_at", "updated_at", "visibility", "owner", "min_disk", "min_ram",
             "virtual_size")
VISIBILITIES = ("public", "private", "shared", "community", "all")
MEMBER_STATUSES = ("accepted", "pending", "rejected", "all")
# Filters that take an "in:a,b" list or a plain exact value.
LIST_FILTERS = ("id", "name", "status", "owner", "disk_format", "container_format")
TIME_FILTERS = ("created_at", "updated_at")
TIME_OPS = ("eq", "neq", "gt", "gte", "lt", "lte")
# Parameters with their own meaning, never taken as property filters.
CONTROL = frozenset({"limit", "marker", "sort", "sort_key", "sort_dir", "visibility",
                     "member_status", "os_hidden", "tag", "size_min", "size_max",
                     "protected", *LIST_FILTERS, *TIME_FILTERS})
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000


@dataclasses.dataclass
class ImageQuery:
    exact: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    times: list[tuple[str, str, dt.datetime]] = dataclasses.field(default_factory=list)
    visibility: str | None = None
    member_status: str = "accepted"
    os_hidden: bool | None = False
    protected: bool | None = None
    tags: list[str] = dataclasses.field(default_factory=list)
    size_min: int | None = None
    size_max: int | None = None
    properties: dict[str, str] = dataclasses.field(default_factory=dict)
    sort: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    limit: int = DEFAULT_LIMIT
    marker: str | None = None


def parse(items: Iterable[tuple[str, str]]) -> ImageQuery:
    """Build an ImageQuery from the request's (key, value) pairs; 400 on anything wrong."""
    params: dict[str, list[str]] = {}
    for key, value in items:
        params.setdefault(key, []).append(value)
    query = ImageQuery()
    for key in LIST_FILTERS:
        if key in params:
            query.exact[key] = in_list(_one(params, key))
    for key in TIME_FILTERS:
        if key in params:
            query.times.append((key, *time_filter(key, _one(params, key))))
    query.visibility = _choice(params, "visibility", VISIBILITIES, None)
    query.member_status = _choice(params, "member_status", MEMBER_STATUSES, "accepted") or ""
    query.os_hidden = boolean("os_hidden", _one(params, "os_hidden")) if "os_hidden" in params \
        else False
    if "protected" in params:
        query.protected = boolean("protected", _one(params, "protected"))
    query.tags = params.get("tag", [])
    query.size_min = _int(params, "size_min", 0)
    query.size_max = _int(params, "size_max", 0)
    query.limit = _int(params, "limit", 1, MAX_LIMIT)
    query.limit = DEFAULT_LIMIT if query.limit is None else query.limit
    query.marker = _one(params, "marker") if "marker" in params else None
    query.sort = sort_order(params)
    query.properties = {k: v[-1] for k, v in params.items() if k not in CONTROL}
    return query


def _one(params: dict[str, list[str]], key: str) -> str:
    return params[key][-1]


def _choice(params: dict[str, list[str]], key: str, choices: tuple[str, ...],
            default: str | None) -> str | None:
    if key not in params:
        return default
    value = _one(params, key)
    if value not in choices:
        raise BadRequest(f"Invalid {key} {value!r}: expected one of {', '.join(choices)}.")
    return value


def _int(params: dict[str, list[str]], key: str, low: int, high: int | None = None
         ) -> int | None:
    if key not in params:
        return None
    raw = _one(params, key)
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"Invalid {key} {raw!r}: an integer is required.") from None
    if value < low:
        raise BadRequest(f"Invalid {key} {raw!r}: it must be at least {low}.")
    return min(value, high) if high is not None else value


def boolean(key: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise BadRequest(f"Invalid {key} {raw!r}: a boolean is required.")


def in_list(raw: str) -> list[str]:
    """'in:a,b' -> ['a', 'b']; any other value is one exact match."""
    if not raw.startswith("in:"):
        return [raw]
    values = [v.strip() for v in raw[3:].split(",")]
    if not any(values):
        raise BadRequest(f"Invalid filter {raw!r}: 'in:' needs at least one value.")
    return values


def time_filter(key: str, raw: str) -> tuple[str, dt.datetime]:
    """'gte:2024-01-01T00:00:00Z' -> ('gte', datetime); a bare time means eq."""
    op, _, value = raw.partition(":") if raw.split(":", 1)[0] in TIME_OPS else ("eq", "", raw)
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Invalid {key} filter {raw!r}: an ISO 8601 time is required.") from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return op, when


def sort_order(params: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(key, dir) pairs from sort=k:d,... or sort_key/sort_dir; id always breaks ties."""
    if "sort" in params and ("sort_key" in params or "sort_dir" in params):
        raise BadRequest("The 'sort' parameter cannot be combined with sort_key/sort_dir.")
    if "sort" in params:
        order = []
        for part in _one(params, "sort").split(","):
            key, _, direction = part.strip().partition(":")
            order.append((key.strip(), direction.strip() or "desc"))
    else:
        keys = params.get("sort_key", ["created_at"])
        dirs = params.get("sort_dir", [])
        if len(dirs) > 1 and len(dirs) != len(keys):
            raise BadRequest("Give one sort_dir, or one per sort_key.")
        dirs = dirs * len(keys) if len(dirs) == 1 else dirs or ["desc"] * len(keys)
        order = list(zip(keys, dirs, strict=True))
    for key, direction in order:
        if key not in SORT_KEYS:
            raise BadRequest(f"Invalid sort key {key!r}: expected one of {', '.join(SORT_KEYS)}.")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction {direction!r}: expected asc or desc.")
    if len({key for key, _ in order}) != len(order):
        raise BadRequest("A sort key may be given only once.")
    if "id" not in {key for key, _ in order}:
        order.append(("id", order[-1][1]))
    return order


def query_string(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The request's parameters without marker and limit, for building page links."""
    return [(k, v) for k, v in pairs if k not in ("marker", "limit")]
