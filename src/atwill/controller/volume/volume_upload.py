"""os-volume_upload_image: a volume's data copied into a new image, as Cinder does it.

The API checks the request as Cinder's schema does, makes a queued image (the target),
and moves the volume to 'uploading', remembering the status it returns to and the image
in the volume's source under UPLOAD_KEY. That source is already in the storage node's
desired state (controller/volume/desired.py), so the node that holds the volume sees
the request at its next converge, copies the volume in the image's disk format and
uploads it (cluster/volume_uploads.py), or reports why it could not. Either way the
volume goes back to what it was (available, or in-use for a forced upload); a failed
upload deletes its image, as Cinder's does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import imageattrs
from ...core.errors import ApiError, BadRequest, Forbidden
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.base import new_uuid, utcnow
from ..db.models import Image
from ..db.volume import Volume, VolumeType
from .common import body_bool, require_member, stamp
from .views import type_view

UPLOAD_KEY = "upload"
DISK_FORMATS = ("raw", "vmdk", "vdi", "qcow2", "vhd", "vhdx", "ploop")
# What a storage node's qemu-img writes and the image service can check (imageformat).
MADE = ("raw", "qcow2")
VISIBILITIES = ("community", "public", "private", "shared")
# Cinder's glance_core_properties: not copied from the volume's image metadata.
CORE = frozenset(("checksum", "container_format", "disk_format", "image_name", "image_id",
                  "min_disk", "min_ram", "name", "size"))


def parse(arg: Any, version: Version) -> dict[str, Any]:
    """The request's fields with Cinder's defaults, or a 400 naming the bad one."""
    if not isinstance(arg, dict):
        raise BadRequest("Invalid input for field/attribute os-volume_upload_image. It must "
                         "be an object.")
    allowed = {"image_name", "force", "disk_format", "container_format"}
    if version >= "3.1":
        allowed |= {"visibility", "protected"}
    extra = sorted(set(arg) - allowed)
    if extra:
        raise BadRequest("Additional properties are not allowed "
                         f"({', '.join(repr(k[:64]) for k in extra)} were unexpected).")
    name = arg.get("image_name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise BadRequest("Invalid input for field/attribute image_name. It must be a string "
                         "of 1 to 255 characters.")
    fmt = arg.get("disk_format", "raw")
    if fmt not in DISK_FORMATS:
        raise BadRequest(f"Invalid input for field/attribute disk_format. Value: "
                         f"{str(fmt)[:64]}. It is not one of {', '.join(DISK_FORMATS)}.")
    if fmt not in MADE:
        raise BadRequest(f"Invalid disk-format '{fmt}': volumes are uploaded as raw or "
                         "qcow2 here.")
    container = arg.get("container_format", "bare")
    if not isinstance(container, str) or len(container) > 255:
        raise BadRequest("Invalid input for field/attribute container_format. It must be a "
                         "string of at most 255 characters.")
    visibility = arg.get("visibility", "private") if version >= "3.1" else "shared"
    if visibility not in VISIBILITIES:
        raise BadRequest(f"Invalid input for field/attribute visibility. Value: "
                         f"{str(visibility)[:64]}. It is not one of {', '.join(VISIBILITIES)}.")
    return {"image_name": name, "force": body_bool(arg.get("force", False), "force"),
            "disk_format": fmt, "container_format": container, "visibility": visibility,
            "protected": body_bool(arg.get("protected", False), "protected")}


def image_properties(meta: dict[str, Any]) -> dict[str, str]:
    """The volume's image metadata the new image may carry: what a client could write to
    Glance itself (no read-only, reserved or os_glance* names such as direct_url or
    locations, no core attribute, strings of bounded length), at most Glance's quota."""
    props: dict[str, str] = {}
    for key, value in meta.items():
        if key in CORE or key in imageattrs.CORE:
            continue
        try:
            imageattrs.check_writable(key)
            props[key] = imageattrs.property_value(key, value)
        except ApiError:
            continue  # not an image property: Cinder's copy would be refused by Glance
    if len(props) > imageattrs.MAX_PROPERTIES:
        raise BadRequest(f"Invalid volume: its image metadata has {len(props)} properties; "
                         f"an image may have at most {imageattrs.MAX_PROPERTIES}.")
    return props


def start(session: Session, creds: Credentials, vol: Volume, params: dict[str, Any],
          version: Version) -> dict[str, Any]:
    """Make the queued image, move the volume to uploading; Cinder's answer."""
    require_member(creds, vol.project_id, "volume_extension:volume_actions:upload_image")
    if params["visibility"] == "public" and not creds.is_admin:
        raise Forbidden("Policy doesn't allow volume_extension:volume_actions:upload_public "
                        "to be performed.")
    if vol.status not in ("available", "in-use"):
        raise BadRequest(f"Invalid volume: Volume {vol.id} status must be available or "
                         f"in-use, but current status is: {vol.status}.")
    if vol.status == "in-use" and not params["force"]:
        raise BadRequest("Invalid volume: Volume status is in-use.")
    if vol.node_id is None:
        raise BadRequest(f"Invalid volume: Volume {vol.id} is on no storage node.")
    image = Image(id=new_uuid(), name=params["image_name"], status="queued",
                  visibility=params["visibility"], protected=params["protected"],
                  owner=vol.project_id, disk_format=params["disk_format"],
                  container_format=params["container_format"], min_disk=vol.size,
                  properties=image_properties(vol.image_meta))
    session.add(image)
    vol.source = {**(vol.source or {}), UPLOAD_KEY: {
        "image_id": image.id, "disk_format": params["disk_format"], "then": vol.status}}
    vol.status = "uploading"
    vtype = session.get(VolumeType, vol.volume_type_id)
    body = {"id": vol.id, "updated_at": stamp(vol.updated_at), "status": "uploading",
            "display_description": vol.description, "size": vol.size,
            "volume_type": type_view(vtype) if vtype is not None else None,
            "image_id": image.id, "container_format": image.container_format,
            "disk_format": image.disk_format, "image_name": image.name}
    if version >= "3.1":
        body.update(visibility=image.visibility, protected=image.protected)
    return {"os-volume_upload_image": body}


def pending(session: Session, image_id: str) -> Volume | None:
    """The volume uploading into image_id, locked; None when no volume is."""
    for vol in session.scalars(select(Volume).where(Volume.status == "uploading")
                               .with_for_update()):
        if (vol.source or {}).get(UPLOAD_KEY, {}).get("image_id") == image_id:
            return vol
    return None


def finish(session: Session, vol: Volume) -> None:
    """The data is in the image: the volume is back to what it was."""
    upload = (vol.source or {}).get(UPLOAD_KEY) or {}
    vol.status = upload.get("then") or "available"
    vol.source = {k: v for k, v in (vol.source or {}).items() if k != UPLOAD_KEY} or None
    vol.updated_at = utcnow()


def failed(session: Session, vol: Volume, image_id: str) -> None:
    """The node could not copy it: the volume is back, the unfinished image deleted."""
    finish(session, vol)
    _drop_unfinished(session, image_id)


def abandon(session: Session, vol: Volume) -> None:
    """The volume is force-deleted while uploading: its unfinished image goes with it.

    An image still queued or saving would otherwise stay forever, its data never to come
    (the volume leaves the node's desired state, and a copy arriving later finds no pending
    upload: 404; one arriving mid-stream finds its image gone and is discarded). An upload
    that already made the image active has finished: that image is the user's."""
    upload = (vol.source or {}).get(UPLOAD_KEY) or {}
    finish(session, vol)
    if isinstance(upload.get("image_id"), str):
        _drop_unfinished(session, upload["image_id"])


def _drop_unfinished(session: Session, image_id: str) -> None:
    image = session.get(Image, image_id)
    if image is not None and image.status in ("queued", "saving", "killed"):
        session.delete(image)
