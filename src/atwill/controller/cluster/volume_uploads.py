"""/cluster/v1/nodes/{id}/volume-uploads/{image_id}: a storage node uploads a volume's
copy into the image that os-volume_upload_image made (volume/volume_upload.py), or says
why it could not.

Only the node holding the uploading volume may answer for its image. The data goes
through the image service's own upload code (size, checksums, format check, active);
the path ends in /file so the request body limit leaves it to that code.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from ...api.cluster import SnapshotFailure
from ...core.errors import Forbidden, NotFound
from ..context import Controller
from ..db.volume import Volume
from ..image.data import store_body
from ..revision import bump
from ..service import controller
from ..volume import volume_upload
from .nodecert import calling_node
from .snapshots import QCOW2_BODY, begin_node_upload

log = logging.getLogger("atwill.cluster")

router = APIRouter()
BASE = "/v1/nodes/{node_id}/volume-uploads/{image_id}"


@router.put(BASE + "/file", status_code=204, response_class=Response,
            openapi_extra=QCOW2_BODY,
            summary="Upload the copy of a volume this storage node was asked for")
async def volume_upload_put(node_id: str, image_id: str, request: Request) -> Response:
    ctl = controller(request)
    await store_body(ctl, request, image_id, lambda: _begin(ctl, request, node_id, image_id),
                     lambda session: _uploaded(session, image_id))
    log.info("volume copy %s uploaded by node %s", image_id, node_id)
    return Response(status_code=204)


@router.post(BASE + "/error", status_code=204, response_class=Response,
             summary="Report that copying a volume failed; its image is deleted")
def volume_upload_error_post(node_id: str, image_id: str, request: Request,
                             body: SnapshotFailure) -> Response:
    with controller(request).db.session() as session:
        vol = _pending(session, request, node_id, image_id)
        vol_id = vol.id
        volume_upload.failed(session, vol, image_id)
        bump(session)
    log.warning("uploading volume %s to image %s failed on node %s: %s", vol_id, image_id,
                node_id, body.message)
    return Response(status_code=204)


def _begin(ctl: Controller, request: Request, node_id: str, image_id: str) -> None:
    with ctl.db.session() as session:
        _pending(session, request, node_id, image_id)
        begin_node_upload(session, image_id)


def _pending(session: Session, request: Request, node_id: str, image_id: str) -> Volume:
    node = calling_node(session, request, node_id)
    vol = volume_upload.pending(session, image_id)
    if vol is None:
        raise NotFound(f"Image {image_id} is not a pending upload of any volume.")
    if vol.node_id != node.id:
        raise Forbidden(f"Image {image_id} is the upload of a volume on another node.")
    return vol


def _uploaded(session: Session, image_id: str) -> None:
    # Runs in the transaction that makes the image active.
    vol = volume_upload.pending(session, image_id)
    if vol is not None:
        volume_upload.finish(session, vol)
        bump(session)
