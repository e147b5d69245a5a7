"""Neutron list semantics over converted resources: filters, tags, sorting and fields."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

PAGING = frozenset({"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse"})
TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")
TRUE, FALSE = frozenset({"true", "1", "yes", "t", "on"}), frozenset({"false", "0", "no", "f",
                                                                       "off"})


class InvalidQuery(ValueError):
    """A list parameter Neutron would answer with a 400."""


def _matches_value(value: Any, wanted: str) -> bool:
    if value is None:
        return wanted in ("", "None", "null")
    if isinstance(value, bool):
        lowered = wanted.lower()
        if lowered not in TRUE | FALSE:
            raise InvalidQuery(f"Invalid input for filter: '{wanted}' is not a boolean.")
        return value == (lowered in TRUE)
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            key, _, expected = wanted.partition("=")
            return any(str(entry.get(key)) == expected for entry in value)
        return wanted in value
    if isinstance(value, dict):
        return True
    return str(value) == wanted


def _tags_match(tags: list[str], params: dict[str, list[str]]) -> bool:
    def wanted(name: str) -> set[str] | None:
        values = params.get(name)
        return {t for v in values for t in v.split(",") if t} if values else None
    have = set(tags)
    checks = ((wanted("tags"), lambda w: w <= have), (wanted("tags-any"), lambda w: w & have),
              (wanted("not-tags"), lambda w: not w <= have),
              (wanted("not-tags-any"), lambda w: not w & have))
    return all(check(w) for w, check in checks if w is not None)


def filtered(items: Iterable[dict[str, Any]], params: dict[str, list[str]]) -> list[dict]:
    """Items whose attributes equal one of the values given for each filter.

    Filters on attributes a resource does not have are ignored, as clients add
    some (e.g. name on floating IPs) expecting exactly that.
    """
    out = []
    for item in items:
        ok = _tags_match(item.get("tags", []), params)
        for key, values in params.items():
            if not ok:
                break
            if key in PAGING or key in TAG_FILTERS or key not in item:
                continue
            ok = any(_matches_value(item[key], v) for v in values)
        if ok:
            out.append(item)
    return out


def _sort_value(value: Any) -> tuple:
    if value is None:
        return (0, "")
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value))


def sorted_items(items: list[dict[str, Any]], keys: Sequence[str],
                 dirs: Sequence[str]) -> list[dict[str, Any]]:
    """Neutron's sort_key/sort_dir pairs (a missing direction is asc)."""
    if len(dirs) > len(keys):
        raise InvalidQuery("The number of sort_keys and sort_dirs must be the same.")
    for direction in dirs:
        if direction not in ("asc", "desc"):
            raise InvalidQuery(f"{direction} is an invalid value for sort_dir, valid "
                               "values are 'asc' and 'desc'.")
    if items:
        for key in keys:
            if key not in items[0]:
                raise InvalidQuery(f"{key} is an invalid attribute for sort_key.")
    pairs = list(zip(keys, list(dirs) + ["asc"] * (len(keys) - len(dirs)), strict=True))
    for key, direction in reversed(pairs):
        items = sorted(items, key=lambda i, k=key: _sort_value(i.get(k)),
                       reverse=direction == "desc")
    return items


def selected(item: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """Only the asked-for attributes (all of them when none are asked for)."""
    if not fields:
        return item
    return {k: v for k, v in item.items() if k in fields}
