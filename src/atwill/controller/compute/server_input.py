"""Parsing and validating a server create request (Nova's schema, as clients send it)."""

from __future__ import annotations

from typing import Any

from ...core.errors import BadRequest
from ...core.microversion import Version
from ..service import wrapped

KNOWN = {
    "name", "flavorRef", "imageRef", "networks", "key_name", "user_data", "metadata",
    "security_groups", "availability_zone", "min_count", "max_count", "description",
    "config_drive", "block_device_mapping_v2", "block_device_mapping", "adminPass",
    "hostname", "return_reservation_id", "OS-DCF:diskConfig", "accessIPv4", "accessIPv6",
    "tags", "trusted_image_certificates", "host", "hypervisor_hostname",
}


def _text(data: dict[str, Any], key: str, limit: int = 255, required: bool = False) -> Any:
    value = data.get(key)
    if value is None:
        if required:
            raise BadRequest(f"Invalid input: '{key}' is a required property.")
        return None
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise BadRequest(f"Invalid input for field '{key}': a string of at most {limit} "
                         "characters is required.")
    return value


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key, 1)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"Invalid input for field '{key}': an integer >= 1 is required.")
    return value


def _image(data: dict[str, Any]) -> str | None:
    """imageRef, or the image of a local boot block device mapping (clients send both)."""
    image = data.get("imageRef") or None
    for bdm in data.get("block_device_mapping_v2") or []:
        if not isinstance(bdm, dict):
            raise BadRequest("Invalid input for block_device_mapping_v2.")
        if bdm.get("destination_type") == "volume" or bdm.get("source_type") in (
                "volume", "snapshot"):
            raise BadRequest("Volumes are not supported by this cloud yet; boot from an "
                             "image to a local disk.")
        if bdm.get("source_type") == "image" and image is None:
            image = bdm.get("uuid")
    if image is not None and not isinstance(image, str):
        raise BadRequest("Invalid input for field 'imageRef'.")
    return image


def _metadata(data: dict[str, Any]) -> dict[str, str]:
    meta = data.get("metadata") or {}
    if not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 255 and len(v) <= 255
            for k, v in meta.items()):
        raise BadRequest("Invalid input for field 'metadata': string keys and values of at "
                         "most 255 characters.")
    return meta


def _security_groups(data: dict[str, Any]) -> list[str] | None:
    groups = data.get("security_groups")
    if groups is None:
        return None
    if not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("name"), str) for g in groups):
        raise BadRequest("Invalid input for field 'security_groups': [{\"name\": ...}].")
    return [g["name"] for g in groups]


def parse_create(body: dict[str, Any], version: Version) -> dict[str, Any]:
    data = wrapped(body, "server")
    unknown = set(data) - KNOWN
    if unknown:
        raise BadRequest(f"Invalid input: additional properties are not allowed "
                         f"({', '.join(sorted(unknown))} were unexpected).")
    networks = data.get("networks")
    if networks is None and version >= "2.37":
        raise BadRequest("Invalid input: 'networks' is required from microversion 2.37.")
    if isinstance(networks, str) and networks not in ("auto", "none"):
        raise BadRequest("Invalid input for field 'networks': 'auto', 'none' or a list.")
    image = _image(data)
    if image is None:
        raise BadRequest("Invalid input: 'imageRef' is required (booting from volumes is not "
                         "supported).")
    spec = {
        "name": _text(data, "name", required=True),
        "flavor": str(data.get("flavorRef") or "") or _missing("flavorRef"),
        "image": image, "networks": networks, "key_name": _text(data, "key_name"),
        "user_data": _text(data, "user_data", limit=65535),
        "metadata": _metadata(data), "security_groups": _security_groups(data),
        "availability_zone": _text(data, "availability_zone"),
        "description": _text(data, "description"),
        "config_drive": bool(data.get("config_drive")),
        "min_count": _count(data, "min_count"), "max_count": _count(data, "max_count"),
        "return_reservation_id": bool(data.get("return_reservation_id")),
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
    for key in ("same_host", "different_host"):
        value = hints.get(key)
        if value is not None and not isinstance(value, (str, list)):
            raise BadRequest(f"Invalid input for scheduler hint {key}.")
    if hints.get("group") is not None and not isinstance(hints["group"], str):
        raise BadRequest("Invalid input for scheduler hint group.")
    return hints
