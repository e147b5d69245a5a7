"""/v2/schemas/*: the JSON schemas image documents point at ("schema": "/v2/schemas/image").

python-glanceclient builds its image and member models from these and validates
what the API answers against them, so they have Glance's shape: the same
properties and types, extra image properties as strings, no other member keys,
and the links clients follow.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...core import imageattrs
from ...core.errors import NotFound
from . import metadef_schemas

router = APIRouter()

UUID_PATTERN = ("^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}"
                "-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$")
STATUSES = ["queued", "saving", "active", "killed", "deleted", "uploading", "importing",
            "pending_delete", "deactivated"]


def _string(max_length: int | None = None, nullable: bool = False,
            read_only: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"type": ["null", "string"] if nullable else "string"}
    if max_length:
        out["maxLength"] = max_length
    if read_only:
        out["readOnly"] = True
    return out


def _read_only(kind: str | list[str]) -> dict[str, Any]:
    return {"type": kind, "readOnly": True}


IMAGE_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "pattern": UUID_PATTERN},
    "name": _string(255, nullable=True),
    "status": {**_read_only("string"), "enum": STATUSES},
    "visibility": {"type": "string", "enum": ["community", "public", "private", "shared"]},
    "protected": {"type": "boolean"}, "os_hidden": {"type": "boolean"},
    "checksum": _string(32, nullable=True, read_only=True),
    "os_hash_algo": _string(64, nullable=True, read_only=True),
    "os_hash_value": _string(128, nullable=True, read_only=True),
    "owner": _string(255, nullable=True),
    "size": _read_only(["null", "integer"]), "virtual_size": _read_only(["null", "integer"]),
    "container_format": {"type": ["null", "string"],
                         "enum": [None, *imageattrs.CONTAINER_FORMATS]},
    "disk_format": {"type": ["null", "string"], "enum": [None, *imageattrs.DISK_FORMATS]},
    "created_at": _read_only("string"), "updated_at": _read_only("string"),
    "tags": {"type": "array", "items": _string(255)},
    "direct_url": _read_only("string"),
    "min_ram": {"type": "integer"}, "min_disk": {"type": "integer"},
    "self": _read_only("string"), "file": _read_only("string"),
    "stores": _read_only("string"), "schema": _read_only("string"),
    "locations": {"type": "array", "items": {
        "type": "object", "required": ["url", "metadata"],
        "properties": {"url": _string(255), "metadata": {"type": "object"}}}},
}
IMAGE: dict[str, Any] = {
    "name": "image", "properties": IMAGE_PROPERTIES,
    # Glance's images are permissive: any other attribute is a string property.
    "additionalProperties": {"type": "string"},
    "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
              {"rel": "describedby", "href": "{schema}"}],
}
MEMBER: dict[str, Any] = {
    "name": "member", "additionalProperties": False,
    "properties": {
        "member_id": {"type": "string"},
        "image_id": {"type": "string", "pattern": UUID_PATTERN},
        "created_at": {"type": "string"}, "updated_at": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "accepted", "rejected"]},
        "schema": _read_only("string"),
    },
}


def collection(name: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "properties": {name: {"type": "array", "items": item}, "first": {"type": "string"},
                       "next": {"type": "string"}, "schema": {"type": "string"}},
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                  {"rel": "describedby", "href": "{schema}"}],
    }


SCHEMAS = {"image": IMAGE, "images": collection("images", IMAGE), "member": MEMBER,
           "members": collection("members", MEMBER)}


@router.get("/v2/schemas/{name}")
def schema_get(name: str) -> dict:
    if name not in SCHEMAS:
        raise NotFound(f"No schema named {name}.")
    return SCHEMAS[name]


@router.get("/v2/schemas/metadefs/{name}")
def metadef_schema_get(name: str) -> dict:
    if name not in metadef_schemas.SCHEMAS:
        raise NotFound(f"No schema named metadefs/{name}.")
    return metadef_schemas.SCHEMAS[name]
