"""POST /v3/volumes/{id}/action: extend, reset status, bootable, readonly, force delete,
image metadata, upload to image (volume_upload.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from ...core.errors import BadRequest
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.base import utcnow
from ..db.volume import Volume, VolumeType
from ..revision import bump
from ..service import controller, json_body
from . import lock_order, placement, volume_upload
from .common import api_version, body_bool, require_admin, require_member, who
from .metadata_input import metadata
from .usage import charge
from .volumes import start_delete

log = logging.getLogger("atwill.volume")
router = APIRouter()
STATUSES = ("creating", "available", "deleting", "error", "error_deleting", "error_managing",
            "managing", "attaching", "in-use", "detaching", "maintenance", "reserved",
            "error_restoring", "error_extending", "downloading", "uploading", "extending",
            "awaiting-transfer", "backing-up", "error_backing-up", "restoring-backup",
            "retyping")
Action = Callable[[Session, Credentials, Volume, Any, Version], Any]


def _extend(session: Session, creds: Credentials, vol: Volume, arg: Any,
            version: Version) -> None:
    require_member(creds, vol.project_id, "volume:extend")
    new_size = (arg or {}).get("new_size") if isinstance(arg, dict) else None
    if isinstance(new_size, str) and new_size.strip().isdigit():
        new_size = int(new_size)
    if isinstance(new_size, bool) or not isinstance(new_size, int):
        raise BadRequest("Invalid input for field/attribute new_size. It must be an integer.")
    allowed = ("available", "in-use") if version >= "3.42" else ("available",)
    if vol.status not in allowed:
        raise BadRequest(f"Invalid volume: Volume {vol.id} status must be "
                         f"{' or '.join(allowed)} to extend, but current status is: "
                         f"{vol.status}.")
    if new_size <= vol.size:
        raise BadRequest(f"Invalid input received: New size for extend must be greater than "
                         f"current size. (current: {vol.size}, extended: {new_size}).")
    delta = new_size - vol.size
    vtype = session.get(VolumeType, vol.volume_type_id)
    charge(session, vol.project_id, vtype.name, gigabytes=delta, size=new_size)
    if not placement.claim_on(session, vol.node_id, delta):
        # Cinder's scheduler (extend_volume) finds no backend: its volume service disabled
        # or down, or no room. The request was accepted (202); the volume goes back to its
        # status at its old size and the quota is not taken (Cinder rolls it back).
        log.warning("extend of volume %s to %s GiB: no valid backend (node %s)", vol.id,
                    new_size, vol.node_name)
        return
    vol.size, vol.status = new_size, "extending"


def _reset_status(session: Session, creds: Credentials, vol: Volume, arg: Any,
                  version: Version) -> None:
    require_admin(creds, "volume_extension:volume_admin_actions:reset_status")
    status = arg.get("status") if isinstance(arg, dict) else None
    if status is None and isinstance(arg, dict) and arg.get("attach_status"):
        return
    if status not in STATUSES:
        raise BadRequest("Invalid input received: Must specify a valid status")
    vol.status = status
    if status != "error":
        vol.error = None


def _set_bootable(session: Session, creds: Credentials, vol: Volume, arg: Any,
                  version: Version) -> None:
    require_member(creds, vol.project_id, "volume:update")
    if not isinstance(arg, dict) or "bootable" not in arg:
        raise BadRequest("Invalid input received: Must specify bootable in request.")
    vol.bootable = body_bool(arg["bootable"], "bootable")


def _readonly(session: Session, creds: Credentials, vol: Volume, arg: Any,
              version: Version) -> None:
    require_member(creds, vol.project_id, "volume:update_readonly_flag")
    if not isinstance(arg, dict) or "readonly" not in arg:
        raise BadRequest("Invalid input received: Must specify readonly in request.")
    vol.readonly = body_bool(arg["readonly"], "readonly")


def _force_delete(session: Session, creds: Credentials, vol: Volume, arg: Any,
                  version: Version) -> None:
    require_admin(creds, "volume_extension:volume_admin_actions:force_delete")
    start_delete(session, vol, cascade=True, force=True)


def _set_image_meta(session: Session, creds: Credentials, vol: Volume, arg: Any,
                    version: Version) -> dict:
    require_member(creds, vol.project_id, "volume:update_volume_metadata")
    given = metadata(arg.get("metadata") if isinstance(arg, dict) else None)
    vol.image_meta = {**vol.image_meta, **given}
    return {"metadata": dict(vol.image_meta)}


def _unset_image_meta(session: Session, creds: Credentials, vol: Volume, arg: Any,
                      version: Version) -> None:
    require_member(creds, vol.project_id, "volume:delete_volume_metadata")
    key = arg.get("key") if isinstance(arg, dict) else None
    if not isinstance(key, str) or key not in vol.image_meta:
        raise BadRequest("Invalid metadata: the key is not in the volume's image metadata.")
    vol.image_meta = {k: v for k, v in vol.image_meta.items() if k != key}


def _upload_image(session: Session, creds: Credentials, vol: Volume, arg: Any,
                  version: Version) -> dict:
    return volume_upload.start(session, creds, vol, volume_upload.parse(arg, version), version)


def _show_image_meta(session: Session, creds: Credentials, vol: Volume, arg: Any,
                     version: Version) -> dict:
    return {"metadata": dict(vol.image_meta)}


ACTIONS: dict[str, tuple[Action, int]] = {
    "os-extend": (_extend, 202), "os-reset_status": (_reset_status, 202),
    "os-set_bootable": (_set_bootable, 200), "os-update_readonly_flag": (_readonly, 202),
    "os-force_delete": (_force_delete, 202), "os-set_image_metadata": (_set_image_meta, 200),
    "os-unset_image_metadata": (_unset_image_meta, 200),
    "os-show_image_metadata": (_show_image_meta, 200),
    "os-volume_upload_image": (_upload_image, 202),
}


@router.post("/v3/volumes/{volume_id}/action")
def volume_action_post(volume_id: str, request: Request, body: dict = Depends(json_body),
                       creds: Credentials = Depends(who),
                       version: Version = Depends(api_version)) -> Response:
    if len(body) != 1 or next(iter(body)) not in ACTIONS:
        raise BadRequest("There is no such action: " + ", ".join(k[:64] for k in body))
    name, arg = next(iter(body.items()))
    handler, status = ACTIONS[name]
    with controller(request).db.session() as session:
        # An extend claims quota and node space: locked in lock_order's order.
        vol = lock_order.volume(session, creds, volume_id, charge=name == "os-extend")
        result = handler(session, creds, vol, arg, version)
        vol.updated_at = utcnow()
        bump(session)
    if result is None:
        return Response(status_code=status)
    return JSONResponse(result, status_code=status)
