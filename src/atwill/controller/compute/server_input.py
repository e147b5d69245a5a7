"""Parsing and validating a server create request (Nova's schema, as clients send it)."""

from __future__ import annotations

from typing import Any

from ...core import addresses, hostforce
from ...core.errors import BadRequest
from ...core.microversion import Version
from ...core.text import clean_name, has_control, shown
from ..service import wrapped
from . import server_volumes_boot

KNOWN = {
    "name", "flavorRef", "imageRef", "networks", "key_name", "user_data", "metadata",
    "security_groups", "availability_zone", "min_count", "max_count", "description",
    "config_drive", "block_device_mapping_v2", "block_device_mapping", "adminPass",
    "hostname", "return_reservation_id", "OS-DCF:diskConfig", "accessIPv4", "accessIPv6",
    "tags", "trusted_image_certificates", "host", "hypervisor_hostname",
}
# Bounds on the lists a create request may carry (Nova: at most 50 tags of 60 characters);
# the others are far above any real request and keep one body from fanning out.
MAX_TAGS, MAX_TAG = 50, 60
MAX_ITEMS = 64
# Far above Nova's metadata_items quota (default 128), which is checked when storing: this
# bound only keeps a body from carrying more than any project may be allowed.
MAX_METADATA = 1024


def _text(data: dict[str, Any], key: str, limit: int = 255, required: bool = False) -> Any:
    """A name-like field: printable text (no control characters, as Nova's schema)."""
    value = clean_name(data.get(key), key, limit, required)
    if required and not value.strip():
        raise BadRequest(f"Invalid input for field '{key}': it is blank.")
    return value


def _base64(data: dict[str, Any], limit: int = 65535) -> str | None:
    """user_data: base64 text, which may be broken into lines (so not a name)."""
    value = data.get("user_data")
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise BadRequest(f"Invalid input for field 'user_data': a string of at most {limit} "
                         "characters is required.")
    return value


def bounded(value: Any, key: str, limit: int = MAX_ITEMS) -> Any:
    """A list or object of at most limit items (the caller checks the items)."""
    if isinstance(value, (list, dict)) and len(value) > limit:
        raise BadRequest(f"Invalid input for field '{key}': more than {limit} items.")
    return value


def access_ip(data: dict[str, Any], key: str) -> str | None:
    """accessIPv4/accessIPv6: absent, or one address of that family as a string."""
    value = data.get(key)
    if value is None or value == "":
        return None
    return str(addresses.ip_field(value, key, 4 if key == "accessIPv4" else 6))


def tags(data: dict[str, Any]) -> list[str]:
    """Nova's server tags: at most 50 strings of 1 to 60 printable characters, no ',' or '/'."""
    value = bounded(data.get("tags") or [], "tags", MAX_TAGS)
    if not isinstance(value, list):
        raise BadRequest("Invalid input for field 'tags': an array of strings is required.")
    for tag in value:
        clean_name(tag, "tags", MAX_TAG, required=True)
        if not tag or "," in tag or "/" in tag:
            raise BadRequest(f"Invalid input for field 'tags': {shown(tag)} is not a tag.")
    return value


def _count(data: dict[str, Any], key: str, default: int = 1) -> int:
    value = data.get(key, default)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"Invalid input for field '{key}': an integer >= 1 is required.")
    return value


def metadata(value: Any, key: str = "metadata") -> dict[str, str]:
    """Nova's metadata: printable keys of 1-255 and values of 0-255 characters."""
    bounded(value, key, MAX_METADATA)
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 255 and len(v) <= 255
            for k, v in value.items()):
        raise BadRequest(f"Invalid input for field '{key}': string keys and values of at "
                         "most 255 characters.")
    for item in value.items():
        if any(has_control(text) for text in item):
            raise BadRequest(f"Invalid input for field '{key}': {shown(item[0])} holds a "
                             "control character.")
    return value


def _security_groups(data: dict[str, Any]) -> list[str] | None:
    groups = bounded(data.get("security_groups"), "security_groups")
    if groups is None:
        return None
    if not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("name"), str) for g in groups):
        raise BadRequest("Invalid input for field 'security_groups': [{\"name\": ...}].")
    return [clean_name(g["name"], "security_groups.name", required=True) for g in groups]


def parse_create(body: dict[str, Any], version: Version) -> dict[str, Any]:
    data = wrapped(body, "server")
    unknown = set(data) - KNOWN
    if unknown:
        raise BadRequest(f"Invalid input: additional properties are not allowed "
                         f"({', '.join(sorted(unknown))} were unexpected).")
    networks = bounded(data.get("networks"), "networks")
    bounded(data.get("block_device_mapping_v2"), "block_device_mapping_v2")
    for key in ("accessIPv4", "accessIPv6"):
        access_ip(data, key)
    if "tags" in data and not version >= "2.52":
        raise BadRequest("Invalid input: additional properties are not allowed ('tags' was "
                         "unexpected; tags at create need microversion 2.52).")
    if ("host" in data or "hypervisor_hostname" in data) and not version >= "2.74":
        raise BadRequest("Invalid input: additional properties are not allowed ('host' and "
                         "'hypervisor_hostname' need microversion 2.74).")
    if networks is None and version >= "2.37":
        raise BadRequest("Invalid input: 'networks' is required from microversion 2.37.")
    if isinstance(networks, str) and networks not in ("auto", "none"):
        raise BadRequest("Invalid input for field 'networks': 'auto', 'none' or a list.")
    image, volumes = server_volumes_boot.parse(data)
    if image is None and not any(v["boot_index"] == 0 for v in volumes):
        raise BadRequest("Invalid input: 'imageRef' is required, or a block device mapping "
                         "with boot_index 0 to boot from a volume.")
    spec = {
        "name": _text(data, "name", required=True),
        "flavor": str(data.get("flavorRef") or "") or _missing("flavorRef"),
        "image": image, "block_devices": volumes, "networks": networks,
        "key_name": _text(data, "key_name"),
        "user_data": _base64(data),
        "metadata": metadata(data.get("metadata") or {}), "security_groups": _security_groups(data),
        "destination": hostforce.requested(
            hostforce.parse_zone(_text(data, "availability_zone")),
            _text(data, "host", required="host" in data),
            _text(data, "hypervisor_hostname", required="hypervisor_hostname" in data)),
        "description": _text(data, "description"),
        "config_drive": bool(data.get("config_drive")),
        # Nova: a missing max_count is min_count, so min_count alone asks for exactly that.
        "min_count": _count(data, "min_count"),
        "max_count": _count(data, "max_count", _count(data, "min_count")),
        "return_reservation_id": bool(data.get("return_reservation_id")),
        "tags": list(dict.fromkeys(tags(data))),
        "hints": _hints(body.get("os:scheduler_hints") or body.get(
            "OS-SCH-HNT:scheduler_hints")),
    }
    if spec["min_count"] > spec["max_count"]:
        raise BadRequest("min_count must be <= max_count.")
    return spec


def _missing(key: str) -> str:
    raise BadRequest(f"Invalid input: '{key}' is a required property.")


def _hints(hints: Any) -> dict[str, Any]:
    if hints is None:
        return {}
    if not isinstance(hints, dict):
        raise BadRequest("Invalid input: scheduler hints must be an object.")
    bounded(hints, "scheduler_hints")
    for key in ("same_host", "different_host"):
        value = bounded(hints.get(key), key)
        if value is not None and not isinstance(value, (str, list)):
            raise BadRequest(f"Invalid input for scheduler hint {key}.")
    if hints.get("group") is not None and not isinstance(hints["group"], str):
        raise BadRequest("Invalid input for scheduler hint group.")
    return hints
