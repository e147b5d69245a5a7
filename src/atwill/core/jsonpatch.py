"""JSON Patch (RFC 6902) applied to a copy of a JSON document.

Clients diff the image they hold against the one they want, so a patch may
address list members (``/tags/0``) as well as top-level keys, and may use any
of the six operations; all are supported here so the image API can judge the
result rather than the spelling.
"""

from __future__ import annotations

import copy
from typing import Any

OPS = ("add", "remove", "replace", "move", "copy", "test")


class PatchError(ValueError):
    """The patch is malformed (a 400)."""


class PatchConflict(ValueError):
    """The patch is well formed but does not fit the document (a 409)."""


def parse_pointer(pointer: Any) -> list[str]:
    """'/a/b~1c' -> ['a', 'b/c']; the empty pointer (whole document) is refused."""
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        raise PatchError(f"Invalid JSON pointer {pointer!r}: it must start with '/'.")
    parts = pointer[1:].split("/")
    if any(part == "" for part in parts):
        raise PatchError(f"Invalid JSON pointer {pointer!r}: empty path segment.")
    return [p.replace("~1", "/").replace("~0", "~") for p in parts]


def roots(ops: list[dict[str, Any]]) -> list[str]:
    """The top-level keys every operation touches (its path and, if any, its from)."""
    out = []
    for op in ops:
        for key in ("path", "from"):
            if key in op:
                out.append(parse_pointer(op[key])[0])
    return out


def validate(ops: Any) -> list[dict[str, Any]]:
    """Check the patch's shape: a list of objects with a known op and the members it needs."""
    if not isinstance(ops, list):
        raise PatchError("A JSON patch must be an array of operations.")
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in OPS:
            raise PatchError(f"Invalid operation {op!r}: 'op' must be one of {', '.join(OPS)}.")
        parse_pointer(op.get("path"))
        if op["op"] in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"Operation {op['op']!r} on {op['path']} needs a 'value'.")
        if op["op"] in ("move", "copy"):
            parse_pointer(op.get("from"))
    return ops


def apply(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """A new document with every operation applied in order; doc is left untouched."""
    result = copy.deepcopy(doc)
    for op in validate(ops):
        path = parse_pointer(op["path"])
        kind = op["op"]
        if kind == "add":
            _add(result, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(result, path)
        elif kind == "replace":
            _remove(result, path)
            _add(result, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            source = parse_pointer(op["from"])
            if path[: len(source)] == source and path != source:
                raise PatchError(f"Cannot move {op['from']} into one of its own children.")
            _add(result, path, _remove(result, source))
        elif kind == "copy":
            _add(result, path, copy.deepcopy(_get(result, parse_pointer(op["from"]))))
        elif _get(result, path) != op["value"]:
            raise PatchConflict(f"Test of {op['path']} failed.")
    return result


def _parent(doc: Any, path: list[str]) -> Any:
    return _get(doc, path[:-1]) if len(path) > 1 else doc


def _get(doc: Any, path: list[str]) -> Any:
    node = doc
    for part in path:
        if isinstance(node, dict):
            if part not in node:
                raise PatchConflict(f"Property {'/'.join(path)} does not exist.")
            node = node[part]
        elif isinstance(node, list):
            node = node[_index(node, part, "/".join(path))]
        else:
            raise PatchConflict(f"Property {'/'.join(path)} does not exist.")
    return node


def _index(items: list[Any], part: str, where: str, allow_end: bool = False) -> int:
    if part == "-" and allow_end:
        return len(items)
    if not part.isdigit() or (part != "0" and part.startswith("0")):
        raise PatchError(f"Invalid list index {part!r} in {where}.")
    index = int(part)
    if index > len(items) or (index == len(items) and not allow_end):
        raise PatchConflict(f"List index {index} is out of range in {where}.")
    return index


def _add(doc: Any, path: list[str], value: Any) -> None:
    parent, last = _parent(doc, path), path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, "/".join(path), allow_end=True), value)
    else:
        raise PatchConflict(f"Cannot add {'/'.join(path)}: its parent is not a container.")


def _remove(doc: Any, path: list[str]) -> Any:
    parent, last = _parent(doc, path), path[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchConflict(f"Property {'/'.join(path)} does not exist.")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, "/".join(path)))
    raise PatchConflict(f"Property {'/'.join(path)} does not exist.")
