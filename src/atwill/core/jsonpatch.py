"""Glance's two JSON-patch dialects, read into RFC 6902 and applied by `jsonpatch`.

``application/openstack-images-v2.1-json-patch`` is RFC 6902
(``{"op": "replace", "path": "/name", "value": ...}``);
``application/openstack-images-v2.0-json-patch`` is the older draft-04 form,
where the operation is the member's name (``{"replace": "/name", "value": ...}``).
Both become RFC 6902 operations here, which the `jsonpatch` library applies.

What stays hand-written, and why the library does not fit there:
- reading the 2.0 dialect, which the library does not know;
- Glance's restrictions on top of RFC 6902: only add, remove and replace (no
  move, copy or test), pointers to a top-level attribute only (except
  ``/locations/N``), no empty segments (RFC 6901 allows ``//``), and Glance's
  own 400 messages, which clients print;
- one leniency Glance lacks: ``/tags/N`` and ``/tags/-``. openstacksdk diffs the
  image it holds, so ``add_tag`` followed by ``update_image`` sends
  ``{"op": "add", "path": "/tags/0", ...}``, which Glance refuses with a 400;
  the library applies such list paths as RFC 6902 says;
- the 2.0 dialect's ``add`` refuses an attribute that is already there (409),
  where RFC 6902's ``add`` replaces it.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonpatch as rfc6902
import jsonpointer

V20 = "application/openstack-images-v2.0-json-patch"
V21 = "application/openstack-images-v2.1-json-patch"
MEDIA_TYPES = (V20, V21)
OPS = ("add", "remove", "replace")
# Path depths per attribute and operation: one segment but for /locations/N (as
# Glance) and /tags/N (see above).
DEPTHS = {"locations": {"add": (2,), "remove": (2,), "replace": (1,)},
          "tags": {"add": (1, 2), "remove": (1, 2), "replace": (1, 2)}}
LIST_INDEX = re.compile(r"^(0|[1-9][0-9]*|-)$")


class PatchError(ValueError):
    """The patch is malformed (a 400)."""


class PatchConflict(ValueError):
    """The patch is well formed but does not fit the document (a 409)."""


def parse(body: Any, media_type: str) -> list[dict[str, Any]]:
    """The RFC 6902 operations a patch of either dialect asks for, checked as Glance does."""
    if media_type not in MEDIA_TYPES:
        raise ValueError(f"not a JSON-patch media type: {media_type}")
    if not isinstance(body, list):
        raise PatchError("Request body must be a JSON array of operation objects.")
    return [operation(raw, media_type) for raw in body]


def operation(raw: Any, media_type: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise PatchError("Operations must be JSON objects.")
    op, pointer = _op_v21(raw) if media_type == V21 else _op_v20(raw)
    parts = decode(pointer)
    depths = DEPTHS.get(parts[0], {}).get(op, (1,))
    if len(parts) not in depths or (len(parts) == 2 and not LIST_INDEX.match(parts[1])):
        raise PatchError(f"Invalid JSON pointer for this resource: '/{'/'.join(parts)}'")
    out = {"op": op, "path": jsonpointer.JsonPointer.from_parts(parts).path}
    if op != "remove":
        if "value" not in raw:
            raise PatchError(f'Operation "{op}" requires a member named "value".')
        out["value"] = raw["value"]
    return out


def _op_v21(raw: dict[str, Any]) -> tuple[str, Any]:
    op = raw.get("op")
    if op is None:
        raise PatchError("Unable to find `op` in JSON Schema change. It must be one of the "
                         f"following: {', '.join(OPS)}.")
    if op not in OPS:
        raise PatchError(f"Invalid operation: `{op}`. It must be one of the following: "
                         f"{', '.join(OPS)}.")
    if "path" not in raw:
        raise PatchError("Unable to find 'path' in JSON Schema change")
    return op, raw["path"]


def _op_v20(raw: dict[str, Any]) -> tuple[str, Any]:
    named = [op for op in OPS if op in raw]
    if len(named) > 1:
        raise PatchError('Operation objects must contain only one member named "add", '
                         '"remove", or "replace".')
    if not named:
        raise PatchError('Operation objects must contain exactly one member named "add", '
                         '"remove", or "replace".')
    return named[0], raw[named[0]]


def decode(pointer: Any) -> list[str]:
    """'/a~1b' -> ['a/b'], refusing what Glance refuses (with its messages)."""
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        raise PatchError(f'Pointer `{pointer}` does not start with "/".')
    if re.search(r"/\s*?/", pointer[1:]):
        raise PatchError(f'Pointer `{pointer}` contains adjacent "/".')
    if len(pointer) > 1 and pointer.endswith("/"):
        raise PatchError(f'Pointer `{pointer}` end with "/".')
    if not pointer[1:].strip():
        raise PatchError(f"Pointer `{pointer}` does not contains valid token.")
    if re.search("~[^01]", pointer) or pointer.endswith("~"):
        raise PatchError(f'Pointer `{pointer}` contains "~" not part of a recognized escape '
                         "sequence.")
    # Glance strips blanks around each segment, so '/ name' is '/name'.
    return [part.strip() for part in jsonpointer.JsonPointer(pointer).parts]


def root(op: dict[str, Any]) -> str:
    """The top-level attribute an operation touches."""
    return jsonpointer.JsonPointer(op["path"]).parts[0]


def apply(doc: dict[str, Any], ops: list[dict[str, Any]],
          media_type: str = V21) -> dict[str, Any]:
    """A new document with parsed operations applied in order; doc is left untouched."""
    result = copy.deepcopy(doc)
    for op in ops:
        name = root(op)
        if media_type == V20 and op["op"] == "add" and name in result:
            raise PatchConflict(f"Property {name} already present.")
        try:
            # One operation at a time, so a conflict names the attribute it hit.
            result = rfc6902.apply_patch(result, [op], in_place=True)
        except (rfc6902.JsonPatchConflict, jsonpointer.JsonPointerException):
            where = "/".join(jsonpointer.JsonPointer(op["path"]).parts)
            raise PatchConflict(f"Property {where} does not exist.") from None
    return result
