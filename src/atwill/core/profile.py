"""A cloud profile (`atwill apply`'s file) read, checked and flattened, with line numbers.

The file lists projects, roles, users, flavors, images, availability zones (their hosts
and HA policy), networks (with their subnets), routers and security groups. Each entry
is keyed by its name (within its project for networks, subnets, routers and security
groups); `state: absent` asks for its deletion.
Any error names the file, the line and the field, and nothing is read from the cloud
before the whole file has passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from . import profile_schema as schema

KINDS = ("roles", "projects", "users", "flavors", "images", "availability_zones", "networks",
         "subnets", "routers", "security_groups")
# The kinds named per project: their key is "project/name".
PROJECT_KINDS = frozenset({"networks", "subnets", "routers", "security_groups"})


class ProfileError(ValueError):
    """A profile that cannot be applied: where (file:line: field) and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


State = dict[str, dict[str, dict[str, Any]]]


@dataclass
class Profile:
    source: str
    present: State = field(default_factory=lambda: {k: {} for k in KINDS})
    absent: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    # Where each entry is written, for messages: "cloud.yaml:12: networks[0]".
    where: dict[tuple[str, str], str] = field(default_factory=dict)

    def place(self, kind: str, key: str) -> str:
        return self.where.get((kind, key), f"{self.source}: {kind} {key}")


def key_of(kind: str, entry: dict[str, Any]) -> str:
    return f"{entry['project']}/{entry['name']}" if kind in PROJECT_KINDS else entry["name"]


class _Map(dict):
    """A mapping that remembers the line of itself and of each key."""

    line = 0
    lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line, out.lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise ProfileError(f"line {key_node.start_mark.line + 1}: {key} is given twice")
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[str(key)] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load(text: str, source: str = "cloud.yaml") -> Profile:
    """The profile in text, checked; ProfileError says where and what is wrong."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except ProfileError as err:
        raise ProfileError(f"{source}:{err.message.removeprefix('line ')}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"{mark.line + 1}" if mark else "?"
        raise ProfileError(f"{source}:{line}: not valid YAML: "
                           f"{getattr(err, 'problem', None) or err}") from None
    profile = Profile(source)
    if data is None:
        return profile
    if not isinstance(data, dict):
        raise ProfileError(f"{source}:1: a profile is a mapping of kinds "
                           f"({', '.join(schema.TOP)}) to lists")
    for top, items in data.items():
        where = f"{source}:{_line(data, top)}"
        if top == "version":
            if items != 1:
                raise ProfileError(f"{where}: version: only version 1 is known")
            continue
        if top not in schema.TOP:
            raise ProfileError(f"{where}: {top}: unknown section (known: version, "
                               f"{', '.join(schema.TOP)})")
        if not isinstance(items, list):
            raise ProfileError(f"{where}: {top}: must be a list of entries")
        for index, item in enumerate(items):
            _add(profile, top, item, f"{top}[{index}]", where)
    return profile


def _line(mapping: Any, key: str | None = None) -> int:
    if key is not None and isinstance(mapping, _Map) and key in mapping.lines:
        return mapping.lines[key]
    return getattr(mapping, "line", 0)


def _add(profile: Profile, kind: str, item: Any, path: str, parent: str,
         inherited: dict[str, Any] | None = None) -> None:
    where = f"{profile.source}:{_line(item)}" if _line(item) else parent
    if not isinstance(item, dict):
        raise ProfileError(f"{where}: {path}: must be a mapping with at least a name")
    entry = dict(inherited or {})
    for name, value in item.items():
        spot = f"{profile.source}:{_line(item, name)}: {path}.{name}"
        if name == "subnets" and kind == "networks":
            continue
        check = schema.FIELDS[kind].get(name)
        if check is None:
            raise ProfileError(f"{spot}: unknown field (known: "
                               f"{', '.join(sorted(schema.FIELDS[kind]))})")
        try:
            entry[name] = check(value)
        except schema.Nested as err:
            inner = _line(value, err.key) if isinstance(value, dict) else (
                _line(value[err.key]) if isinstance(value, list) else 0)
            label = f"[{err.key}]" if isinstance(value, list) else f".{err.key}"
            raise ProfileError(f"{profile.source}:{inner or _line(item, name)}: {path}.{name}"
                               f"{label}: {err}") from None
        except ValueError as err:
            raise ProfileError(f"{spot}: {err}") from None
    for needed in ("name", "project") if kind in PROJECT_KINDS else ("name",):
        if needed not in entry:
            raise ProfileError(f"{where}: {path}: {needed} is required")
    key = key_of(kind, entry)
    if (kind, key) in profile.where:
        raise ProfileError(f"{where}: {path}: {kind} {key} is already at "
                           f"{profile.where[(kind, key)]}")
    profile.where[(kind, key)] = f"{where}: {path}"
    if entry.pop("state", "present") == "absent":
        profile.absent[kind].add(key)
    else:
        profile.present[kind][key] = entry
    subnets = item.get("subnets") if kind == "networks" else None
    if subnets is not None:
        if not isinstance(subnets, list):
            raise ProfileError(f"{profile.source}:{_line(item, 'subnets')}: {path}.subnets: "
                               "must be a list of entries")
        for index, sub in enumerate(subnets):
            _add(profile, "subnets", sub, f"{path}.subnets[{index}]", where,
                 {"project": entry["project"], "network": entry["name"]})
