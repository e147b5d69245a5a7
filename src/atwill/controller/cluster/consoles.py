"""PUT /cluster/v1/nodes/{id}/instances/{instance}/console: a node sends a console tail.

Console output travels apart from heartbeats, so no guest output can slow a
node's liveness reports; each chunk is the log's tail, at most 64 KiB, and
replaces the one before (what `openstack console log show` reads).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from ...core.errors import NotFound
from ...core.nodereports import CONSOLE_BYTES
from ..context import Controller
from ..db.models import Instance
from ..service import controller
from .bodies import read_bytes
from .nodecert import calling_node

router = APIRouter()
TEXT_BODY = {"requestBody": {"required": True, "content": {"text/plain": {
    "schema": {"type": "string", "maxLength": CONSOLE_BYTES}}}}}


@router.put("/v1/nodes/{node_id}/instances/{instance_id}/console", status_code=204,
            response_class=Response, openapi_extra=TEXT_BODY,
            summary="Replace the console log tail of an instance on this node (≤ 64 KiB)")
async def console_put(node_id: str, instance_id: str, request: Request) -> Response:
    raw = await read_bytes(request, CONSOLE_BYTES, "console log chunk")
    text = raw.decode(errors="replace").replace("\x00", "")
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
