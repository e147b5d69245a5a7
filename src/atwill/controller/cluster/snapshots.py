"""/cluster/v1/nodes/{id}/snapshots/{image_id}: a node uploads a server snapshot, or says why not.

Only the node running the instance may answer for its pending snapshot. The
data is stored by the image service's own upload code (size, checksums, active).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from ...api.cluster import SnapshotFailure
from ...core.errors import Conflict, Forbidden, NotFound
from ..context import Controller
from ..db.models import Image, Instance
from ..image.data import mark_saving, store_body
from ..servers import snapshots
from ..service import controller
from .nodecert import calling_node

log = logging.getLogger("atwill.cluster")

router = APIRouter()
QCOW2_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": {
    "schema": {"type": "string", "format": "binary"}}}}}


@router.put("/v1/nodes/{node_id}/snapshots/{image_id}", status_code=204,
            response_class=Response, openapi_extra=QCOW2_BODY,
            summary="Upload the qcow2 data of a snapshot this node was asked for")
async def snapshot_put(node_id: str, image_id: str, request: Request) -> Response:
    ctl = controller(request)
    await store_body(ctl, request, image_id, lambda: _begin(ctl, request, node_id, image_id),
                     lambda session: _uploaded(session, image_id))
    log.info("snapshot %s uploaded by node %s", image_id, node_id)
    return Response(status_code=204)


@router.post("/v1/nodes/{node_id}/snapshots/{image_id}/error", status_code=204,
             response_class=Response,
             summary="Report that a snapshot failed on this node; its image is deleted")
def snapshot_error_post(node_id: str, image_id: str, request: Request,
                        body: SnapshotFailure) -> Response:
    with controller(request).db.session() as session:
        snapshots.failed(session, _pending(session, request, node_id, image_id), body.message)
    log.warning("snapshot %s failed on node %s: %s", image_id, node_id, body.message)
    return Response(status_code=204)


def _begin(ctl: Controller, request: Request, node_id: str, image_id: str) -> None:
    with ctl.db.session() as session:
        inst = _pending(session, request, node_id, image_id)
        begin_node_upload(session, image_id)
        snapshots.uploading(inst)


def begin_node_upload(session: Session, image_id: str) -> None:
    """The image a node is about to send (a snapshot, a volume's copy): queued -> saving."""
    image = session.get(Image, image_id)
    if image is None:
        raise NotFound(f"Image {image_id} was deleted before its data was uploaded.")
    if image.status != "queued":
        raise Conflict(f"Image {image_id} has status '{image.status}': it is already "
                       "being uploaded.")
    mark_saving(session, image_id)


def _pending(session: Session, request: Request, node_id: str, image_id: str) -> Instance:
    node = calling_node(session, request, node_id)
    inst = snapshots.pending(session, image_id, lock=True)
    if inst is None:
        raise NotFound(f"Image {image_id} is not a pending snapshot of any instance.")
    if inst.node_id != node.id:
        raise Forbidden(f"Image {image_id} is a snapshot of an instance on another node.")
    return inst


def _uploaded(session: Session, image_id: str) -> None:
    # Runs in the transaction that makes the image active.
    inst = snapshots.pending(session, image_id, lock=True)
    if inst is not None:
        snapshots.uploaded(session, inst)
