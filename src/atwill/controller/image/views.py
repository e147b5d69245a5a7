"""Glance's documents of image and member rows."""

from __future__ import annotations

from typing import Any

from ..db.base import iso
from ..db.models import Image, ImageMember


def image(image: Image) -> dict[str, Any]:
    """Glance's image document: core attributes with the properties beside them."""
    out: dict[str, Any] = dict(image.properties or {})
    out.update({
        "id": image.id, "name": image.name, "status": image.status,
        "visibility": image.visibility, "protected": image.protected,
        "os_hidden": image.os_hidden, "owner": image.owner,
        "disk_format": image.disk_format, "container_format": image.container_format,
        "min_disk": image.min_disk, "min_ram": image.min_ram, "size": image.size,
        "virtual_size": image.virtual_size, "checksum": image.checksum,
        "os_hash_algo": image.os_hash_algo, "os_hash_value": image.os_hash_value,
        "tags": [t.value for t in image.tags],
        "created_at": iso(image.created_at), "updated_at": iso(image.updated_at),
        "self": f"/v2/images/{image.id}", "file": f"/v2/images/{image.id}/file",
        "schema": "/v2/schemas/image",
    })
    return out


def member(member: ImageMember) -> dict[str, Any]:
    return {"image_id": member.image_id, "member_id": member.member_id,
            "status": member.status, "created_at": iso(member.created_at),
            "updated_at": iso(member.updated_at), "schema": "/v2/schemas/member"}
