"""What a new volume is made from: blank, an image, a snapshot or another volume."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.orm import Session

from ...core.errors import ApiError, BadRequest, NotFound
from ...core.policy import Credentials
from ..db.models import Image
from ..db.volume import Volume, VolumeSnapshot
from ..image.common import find_image
from ..peers.images import scoped_image
from .common import can_read

GIB = 1024**3
IMAGE_META_KEYS = ("checksum", "container_format", "disk_format", "min_disk", "min_ram",
                   "size")


def from_snapshot(session: Session, creds: Credentials, snap_id: Any,
                  vol: Volume) -> Volume:
    snap = session.get(VolumeSnapshot, snap_id) if isinstance(snap_id, str) else None
    if snap is None or not can_read(creds, snap.project_id):
        raise NotFound(f"Snapshot {str(snap_id)[:64]} could not be found.")
    if snap.status != "available":
        raise BadRequest("Invalid snapshot: Originating snapshot status must be one of "
                         "'available' values")
    parent = session.get(Volume, snap.volume_id)
    if vol.size < snap.size:
        raise BadRequest(f"Invalid input received: Volume size '{vol.size}'GB cannot be "
                         f"smaller than the snapshot size {snap.size}GB. They must be >= "
                         "original snapshot size.")
    vol.snapshot_id, vol.source = snap.id, {"type": "snapshot", "id": snap.id}
    return parent


def from_volume(session: Session, creds: Credentials, src_id: Any, vol: Volume) -> Volume:
    src = session.get(Volume, src_id) if isinstance(src_id, str) else None
    if src is None or not can_read(creds, src.project_id):
        raise NotFound(f"Volume {str(src_id)[:64]} could not be found.")
    if src.status not in ("available", "in-use"):
        raise BadRequest("Invalid volume: Unable to create a volume from an originating "
                         "source volume when its status is not 'available' or 'in-use'.")
    if vol.size < src.size:
        raise BadRequest(f"Invalid input received: Volume size '{vol.size}'GB cannot be "
                         f"smaller than original volume size {src.size}GB. They must be >= "
                         "original volume size.")
    vol.source_volid, vol.source = src.id, {"type": "volume", "id": src.id}
    return src


def from_image(session: Session, creds: Credentials, image_ref: Any, vol: Volume) -> None:
    if not isinstance(image_ref, str):
        raise BadRequest("Invalid image identifier or unable to access requested image.")
    # X-Scope {"image": peer}: the peer's image (peers/images.py), else one of this cloud.
    image: Image | None = scoped_image(session, image_ref)
    try:
        image = image or find_image(session, creds, image_ref)
    except ApiError:
        raise NotFound(f"Image {image_ref[:64]} could not be found.") from None
    if image.status != "active":
        raise BadRequest(f"Invalid image: Image {image.id} is not active.")
    if image.disk_format not in ("qcow2", "raw"):
        raise BadRequest(f"Invalid image: disk format {image.disk_format} is not supported; "
                         "use qcow2 or raw.")
    needed = max(image.min_disk or 0, math.ceil((image.size or 0) / GIB))
    if needed > vol.size:
        raise BadRequest(f"Invalid input received: Size of specified image {needed} GB is "
                         f"larger than volume size {vol.size} GB.")
    # Cinder's check_virtual_size (ImageUnacceptable, a 400); the storage node checks the
    # file's own virtual size again (agent/storage/volumes.py): metadata may lie.
    virtual = math.ceil((image.virtual_size or 0) / GIB)
    if virtual > vol.size:
        raise BadRequest(f"Image {image.id} is unacceptable: Image virtual size is "
                         f"{virtual}GB and doesn't fit in a volume of size {vol.size}GB.")
    vol.image_id, vol.bootable = image.id, True
    vol.source = {"type": "image", "id": image.id, "disk_format": image.disk_format,
                  "checksum": image.checksum, "os_hash_value": image.os_hash_value}
    meta = {"image_id": image.id, "image_name": image.name or ""}
    for key in IMAGE_META_KEYS:
        value = getattr(image, key)
        if value is not None:
            meta[key] = str(value)
    vol.image_meta = meta
