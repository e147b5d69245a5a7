"""/v2/schemas/*: the JSON schemas image documents point at ("schema": "/v2/schemas/image")."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...core import imageattrs
from ...core.errors import NotFound

router = APIRouter()

STRING = {"type": ["null", "string"], "maxLength": 255}
IMAGE: dict[str, Any] = {
    "name": "image", "additionalProperties": {"type": "string"},
    "properties": {
        "id": {"type": "string", "readOnly": True},
        "name": STRING, "owner": STRING, "checksum": {"type": ["null", "string"],
                                                      "readOnly": True},
        "status": {"type": "string", "readOnly": True,
                   "enum": ["queued", "saving", "active", "killed", "deleted",
                            "pending_delete", "deactivated"]},
        "visibility": {"type": "string", "enum": list(imageattrs.VISIBILITIES)},
        "protected": {"type": "boolean"}, "os_hidden": {"type": "boolean"},
        "disk_format": {"type": ["null", "string"],
                        "enum": [None, *imageattrs.DISK_FORMATS]},
        "container_format": {"type": ["null", "string"],
                             "enum": [None, *imageattrs.CONTAINER_FORMATS]},
        "min_disk": {"type": "integer"}, "min_ram": {"type": "integer"},
        "size": {"type": ["null", "integer"], "readOnly": True},
        "virtual_size": {"type": ["null", "integer"], "readOnly": True},
        "os_hash_algo": {"type": ["null", "string"], "readOnly": True},
        "os_hash_value": {"type": ["null", "string"], "readOnly": True},
        "tags": {"type": "array", "items": STRING},
        "created_at": {"type": "string", "readOnly": True},
        "updated_at": {"type": "string", "readOnly": True},
        "self": {"type": "string", "readOnly": True},
        "file": {"type": "string", "readOnly": True},
        "schema": {"type": "string", "readOnly": True},
    },
}
MEMBER: dict[str, Any] = {
    "name": "member",
    "properties": {
        "image_id": {"type": "string"}, "member_id": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "accepted", "rejected"]},
        "created_at": {"type": "string"}, "updated_at": {"type": "string"},
        "schema": {"type": "string"},
    },
}


def collection(name: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "properties": {name: {"type": "array", "items": item},
                                         "schema": {"type": "string"}}}


SCHEMAS = {"image": IMAGE, "images": collection("images", IMAGE), "member": MEMBER,
           "members": collection("members", MEMBER)}


@router.get("/v2/schemas/{name}")
def schema_get(name: str) -> dict:
    if name not in SCHEMAS:
        raise NotFound(f"No schema named {name}.")
    return SCHEMAS[name]
