"""POST /cluster/v1/nodes/{id}/restart-notice: an agent says it restarts, back within N s.

Only the node itself may say so (its client certificate): a notice holds off
fencing and evacuation, so one node must never be able to give it for another.
The notice lives in the node's host_status (core/restart_notice) until the
restarted agent's first heartbeat replaces it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from fastapi import APIRouter, Request

from ...core import json_edge, restart_notice
from ...core.errors import Conflict
from ..context import Controller
from ..service import controller, read_bytes
from .nodecert import calling_node

log = logging.getLogger("atwill.cluster")
router = APIRouter()
NOTICE_BYTES = 4096
DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["seconds"], "additionalProperties": False,
    "properties": {
        "seconds": {"type": "number", "minimum": restart_notice.MIN_SECONDS,
                    "maximum": restart_notice.MAX_SECONDS},
        "reason": {"type": "string", "maxLength": restart_notice.MAX_REASON},
        restart_notice.RUN_KEY: {"type": "string", "pattern": "^[0-9a-f]{8,64}$"}}}}}}}


@router.post("/v1/nodes/{node_id}/restart-notice", openapi_extra=DOC,
             summary="The node's agent restarts on purpose: hold off fencing for N seconds")
async def restart_notice_post(node_id: str, request: Request) -> dict[str, Any]:
    raw = await read_bytes(request, NOTICE_BYTES, "restart notice")
    return await asyncio.to_thread(_give, controller(request), request, node_id, raw)


def _give(ctl: Controller, request: Request, node_id: str, raw: bytes) -> dict[str, Any]:
    with ctl.db.session() as session:
        node = calling_node(session, request, node_id)
        body = json_edge.loads(raw)
        seconds, reason = restart_notice.parse(body)
        run = restart_notice.run_of(body)
        if node.state != "up" or node.forced_down:
            # Fencing or evacuation may be under way: a notice must not stop them.
            raise Conflict(f"Node {node.name} is down (or forced down); a restart notice "
                           "cannot hold off what follows.")
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        if restart_notice.holds(node.host_status, now):
            # Only a heartbeat ends a notice: notices one after another would hold off
            # fencing for ever (and, while the node counts as unheard, others' too).
            raise Conflict(f"Node {node.name} already gave a restart notice "
                           f"({restart_notice.describe(node.host_status)}); a heartbeat "
                           "of its restarted agent ends it.")
        notice = restart_notice.record(now, seconds, reason, run)
        node.host_status = {**(node.host_status or {}), restart_notice.KEY: notice}
        log.warning("node %s: its agent restarts (%s), back within %g s; it is not fenced "
                    "before %s", node.name, reason, seconds, notice["until"])
        return {"node_id": node.id, **notice}
