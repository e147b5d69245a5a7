"""The order resources are made in: explicit depends_on plus what their properties read."""

from __future__ import annotations

from typing import Any

from .errors import CircularDependency
from .template import Template, calls


def references(value: Any) -> set[str]:
    """Names of the resources a value reads through get_resource or get_attr."""
    found = set()
    for name, arg, _where in calls(value, ""):
        if name == "get_resource" and isinstance(arg, str):
            found.add(arg)
        elif name == "get_attr" and isinstance(arg, list) and arg and isinstance(arg[0], str):
            found.add(arg[0])
    return found


def dependencies(tmpl: Template, present: set[str] | None = None) -> dict[str, set[str]]:
    """Resource -> the resources it needs first (only those present, when given)."""
    names = set(tmpl.resources) if present is None else present
    deps = {}
    for name in names:
        res = tmpl.resources[name]
        needed = set(res.depends_on) | references(res.properties) | references(res.metadata)
        deps[name] = (needed & names) - {name}
    _check_acyclic(deps)
    return deps


def _check_acyclic(deps: dict[str, set[str]]) -> None:
    remaining = {k: set(v) for k, v in deps.items()}
    while remaining:
        ready = [k for k, v in remaining.items() if not v]
        if not ready:
            cycle = ", ".join(sorted(remaining))
            raise CircularDependency(f"Circular Dependency Found: {cycle}")
        for k in ready:
            del remaining[k]
        for v in remaining.values():
            v.difference_update(ready)


def reverse(deps: dict[str, set[str]]) -> dict[str, set[str]]:
    """Resource -> the resources that need it (the order a delete must respect)."""
    rev: dict[str, set[str]] = {k: set() for k in deps}
    for name, needed in deps.items():
        for dep in needed:
            rev.setdefault(dep, set()).add(name)
    return rev
