"""PUT /cluster/v1/nodes/{id}/instances/{instance}/console: a node sends a console tail.

Console output travels apart from heartbeats, so no guest output can slow a
node's liveness reports; each chunk is the log's tail, at most 64 KiB, and
replaces the one before (what `openstack console log show` reads).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from ...api.cluster import ConsoleChunk
from ...core.errors import NotFound, PayloadTooLarge
from ...core.nodereports import CONSOLE_BYTES
from ..context import Controller
from ..db.models import Instance
from ..service import controller
from .bodies import read_model
from .nodecert import calling_node

router = APIRouter()
DOC = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": ConsoleChunk.model_json_schema()}}}}
# JSON escapes can take six bytes per character of console text.
JSON_BYTES = 6 * CONSOLE_BYTES + 1024


@router.put("/v1/nodes/{node_id}/instances/{instance_id}/console", status_code=204,
            response_class=Response, openapi_extra=DOC,
            summary="Replace the console log tail of an instance on this node (≤ 64 KiB)")
async def console_put(node_id: str, instance_id: str, request: Request) -> Response:
    chunk = await read_model(request, ConsoleChunk, JSON_BYTES, "console log chunk")
    if len(chunk.console.encode(errors="replace")) > CONSOLE_BYTES:
        raise PayloadTooLarge(f"A console log chunk is at most {CONSOLE_BYTES} bytes (UTF-8).")
    text = chunk.console.replace("\x00", "")
    await asyncio.to_thread(_store, controller(request), request, node_id, instance_id, text)
    return Response(status_code=204)


def _store(ctl: Controller, request: Request, node_id: str, instance_id: str,
           text: str) -> None:
    with ctl.db.session() as session:
        node = calling_node(session, request, node_id)
        inst = session.get(Instance, instance_id)
        if inst is None or inst.deleted or inst.node_id != node.id:
            raise NotFound(f"No instance {instance_id[:64]} on this node.")
        inst.console = text
