"""/cluster/v1/nodes/{id}/cold-migrations/{migration}: the disk of a cold migration or
resize goes from its source node to its destination node through the controller, over
the overlay, each node authenticated by its own certificate (servers/resize_agents.py).

The source PUTs the instance's disk (its qcow2 overlay; the destination boots it on the
same base image); the destination GETs it and says it was received, or either says why
it could not. The controller's copy is removed once received or failed.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from ...api.cluster import SnapshotFailure
from ...core.errors import NotFound
from ..context import Controller
from ..image.data import receive
from ..image.store import Upload
from ..servers import resize_agents
from ..service import controller
from .nodecert import calling_node
from .snapshots import QCOW2_BODY

log = logging.getLogger("atwill.cluster")

router = APIRouter()
BASE = "/v1/nodes/{node_id}/cold-migrations/{migration}"


def _step(ctl: Controller, request: Request, node_id: str, migration: str, role: str,
          act: Any) -> Any:
    with ctl.db.session() as session:
        node = calling_node(session, request, node_id)
        record, inst = resize_agents.pending(session, node, migration, role)
        return act(session, inst, record)


@router.put(BASE + "/file", status_code=204, response_class=Response,
            openapi_extra=QCOW2_BODY,
            summary="Upload the disk of an instance this node sends away (its source)")
async def cold_migration_disk_put(node_id: str, migration: str, request: Request) -> Response:
    ctl = controller(request)
    final = await run_in_threadpool(_step, ctl, request, node_id, migration, "source",
                                    lambda s, i, r: _begin(ctl, s, i, r))
    final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    upload = Upload(final.with_name(f".upload-{uuid.uuid4().hex}"),
                    ctl.settings.image_size_limit)
    published = False
    try:
        await receive(request, upload)
        upload.publish(final)
        published = True
        await run_in_threadpool(_step, ctl, request, node_id, migration, "source",
                                resize_agents.sent)
    except BaseException:
        upload.abort()
        if published:  # the server went meanwhile: nobody will fetch this copy
            final.unlink(missing_ok=True)
        raise
    log.info("cold migration %s: node %s uploaded the disk", migration, node_id)
    return Response(status_code=204)


def _begin(ctl: Controller, session: Any, inst: Any, record: Any) -> Any:
    resize_agents.sending(session, inst, record)
    return resize_agents.transfer_path(ctl, record)


@router.get(BASE + "/file", response_class=FileResponse,
            summary="Fetch the disk of an instance this node receives (its destination)")
def cold_migration_disk_get(node_id: str, migration: str, request: Request) -> FileResponse:
    ctl = controller(request)
    path = _step(ctl, request, node_id, migration, "dest",
                 lambda s, i, r: resize_agents.transfer_path(ctl, r))
    if not path.exists():
        raise NotFound(f"Migration {migration}: the disk was not uploaded yet.")
    return FileResponse(path, media_type="application/octet-stream")


@router.post(BASE + "/received", status_code=204, response_class=Response,
             summary="Say the disk was received (and grown): the instance moves here")
def cold_migration_received_post(node_id: str, migration: str, request: Request) -> Response:
    ctl = controller(request)
    path = _step(ctl, request, node_id, migration, "dest", lambda s, i, r: (
        resize_agents.received(s, i, r), resize_agents.transfer_path(ctl, r))[1])
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    log.info("cold migration %s: node %s received the disk", migration, node_id)
    return Response(status_code=204)


@router.post(BASE + "/reverted", status_code=204, response_class=Response,
             summary="Say the disk kept for a resize on this node is back: it starts again")
def cold_migration_reverted_post(node_id: str, migration: str, request: Request) -> Response:
    with controller(request).db.session() as session:
        resize_agents.restored(session, calling_node(session, request, node_id), migration)
    return Response(status_code=204)


@router.post(BASE + "/error", status_code=204, response_class=Response,
             summary="Report that sending or receiving the disk failed on this node")
def cold_migration_error_post(node_id: str, migration: str, request: Request,
                              body: SnapshotFailure) -> Response:
    ctl = controller(request)
    with ctl.db.session() as session:
        node = calling_node(session, request, node_id)
        record, inst = resize_agents.pending(session, node, migration, "either")
        resize_agents.failed(session, inst, record, f"{node.name}: {body.message}")
        path = resize_agents.transfer_path(ctl, record)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return Response(status_code=204)
