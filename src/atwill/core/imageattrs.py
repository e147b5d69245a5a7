"""Image attributes: which exist, which clients may write, and what values they take.

The image API keeps arbitrary string properties next to its core attributes
at the top level of the image, so every write is checked here against Glance's
rules: read-only and reserved names are refused with 403, bad values with 400.
"""

from __future__ import annotations

import uuid
from typing import Any

from .errors import BadRequest, Forbidden, PayloadTooLarge
from .text import shown

READ_ONLY = frozenset({
    "id", "status", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value",
    "created_at", "updated_at", "self", "file", "schema", "direct_url", "locations",
})
RESERVED = frozenset({"location", "deleted", "deleted_at"})
RESERVED_PREFIX = "os_glance"
VISIBILITIES = ("public", "private", "shared", "community")
DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso",
                "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
# Writable core attributes; everything else a client writes is a string property.
CORE = frozenset({"name", "visibility", "protected", "os_hidden", "owner", "disk_format",
                  "container_format", "min_disk", "min_ram", "tags"})
# Formats describe the data, so they are fixed once data has been uploaded.
FORMATS = ("disk_format", "container_format")
MAX_TAGS = 128
MAX_LENGTH = 255
# Glance's image_property_quota default: extra properties per image, beyond which 413.
MAX_PROPERTIES = 128


def check_writable(key: str) -> None:
    """403 for attributes no client may set or remove."""
    if key in READ_ONLY:
        raise Forbidden(f"Attribute '{key}' is read-only.")
    if key in RESERVED or key.startswith(RESERVED_PREFIX):
        raise Forbidden(f"Attribute '{key}' is reserved.")


def check_patchable(op: str, key: str) -> None:
    """403 for a patch operation on an attribute no client may change.

    Images here have no locations to show (Glance's show_multiple_locations is
    off by default), so /locations is refused as Glance refuses it then.
    """
    if key == "locations":
        verb = "update" if op == "replace" else op
        raise Forbidden(f"It's not allowed to {verb} locations if locations are invisible.")
    check_writable(key)


def core_value(key: str, value: Any) -> Any:
    """The validated value of one writable core attribute (400 when it is wrong)."""
    if key == "name":
        if value is not None and (not isinstance(value, str) or len(value) > MAX_LENGTH):
            raise BadRequest(f"Invalid value for 'name': {value!r} is not a string of at "
                             f"most {MAX_LENGTH} characters.")
    elif key in ("protected", "os_hidden"):
        if not isinstance(value, bool):
            raise BadRequest(f"Invalid value for '{key}': {value!r} is not a boolean.")
    elif key in ("min_disk", "min_ram"):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
            raise BadRequest(f"Invalid value for '{key}': {value!r} is not a non-negative "
                             "integer.")
    elif key == "visibility":
        _choice(key, value, VISIBILITIES, nullable=False)
    elif key == "disk_format":
        _choice(key, value, DISK_FORMATS)
    elif key == "container_format":
        _choice(key, value, CONTAINER_FORMATS)
    elif key == "owner":
        if value is not None and (not isinstance(value, str) or len(value) > 64):
            raise BadRequest(f"Invalid value for 'owner': {value!r} is not a project id.")
    elif key == "tags":
        return tag_list(value)
    return value


def _choice(key: str, value: Any, choices: tuple[str, ...], nullable: bool = True) -> None:
    if value is None and nullable:
        return
    if value not in choices:
        raise BadRequest(f"Invalid value for '{key}': {value!r} is not one of "
                         f"{', '.join(choices)}.")


def tag(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_LENGTH:
        raise BadRequest(f"Invalid tag {value!r}: a non-empty string of at most "
                         f"{MAX_LENGTH} characters is required.")
    return value


def tag_list(value: Any) -> list[str]:
    """Tags as a set in first-seen order; duplicates collapse as in Glance."""
    if not isinstance(value, list):
        raise BadRequest(f"Invalid value for 'tags': {value!r} is not an array.")
    tags = list(dict.fromkeys(tag(v) for v in value))
    if len(tags) > MAX_TAGS:
        raise PayloadTooLarge(f"An image may have at most {MAX_TAGS} tags.")
    return tags


def property_value(key: str, value: Any) -> str:
    """Arbitrary properties are strings with bounded names."""
    if not key or len(key) > MAX_LENGTH:
        raise BadRequest(f"Invalid property name {shown(key)}: 1 to {MAX_LENGTH} characters.")
    if not isinstance(value, str) or len(value) > MAX_LENGTH:
        raise BadRequest(f"Invalid value for property {shown(key)}: {shown(value)} is not a "
                         f"string of at most {MAX_LENGTH} characters.")
    return value


def property_count(props: dict[str, str]) -> dict[str, str]:
    """props, unless there are more than Glance's default quota allows (413)."""
    if len(props) > MAX_PROPERTIES:
        raise PayloadTooLarge(f"An image may have at most {MAX_PROPERTIES} properties "
                              f"(attempted: {len(props)}).")
    return props


def create_fields(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Split a create body into validated core attributes and properties."""
    core: dict[str, Any] = {}
    props: dict[str, str] = {}
    for key, value in body.items():
        if key == "id":
            core["id"] = image_id(value)
            continue
        check_writable(key)
        if key in CORE:
            core[key] = core_value(key, value)
        else:
            props[key] = property_value(key, value)
    return core, property_count(props)


def image_id(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value))) if isinstance(value, str) else _bad_id(value)
    except ValueError:
        return _bad_id(value)


def _bad_id(value: Any) -> str:
    raise BadRequest(f"Invalid value for 'id': {value!r} is not a UUID.")


def changes(old: dict[str, Any], new: dict[str, Any], status: str
            ) -> tuple[dict[str, Any], dict[str, str]]:
    """Validated core changes and the full new property set of a patched image.

    old and new are the image's API documents before and after the patch.
    """
    core: dict[str, Any] = {}
    props: dict[str, str] = {}
    for key in old.keys() | new.keys():
        if key in new and key in old and new[key] == old[key]:
            if key not in CORE and key not in READ_ONLY:
                props[key] = new[key]
            continue
        if key in CORE and key not in new:
            raise Forbidden(f"Property {key} may not be removed.")
        check_writable(key)
        if key in CORE:
            if key in FORMATS and status != "queued":
                raise Forbidden(f"Attribute '{key}' can be only replaced for a queued image.")
            core[key] = core_value(key, new[key])
        elif key in new:
            props[key] = property_value(key, new[key])
    return core, property_count(props)
