"""/v2.0/agents: one `atwill agent` per node, alive while the node is up (read-only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from ...core.errors import NotFound
from ...core.policy import Credentials
from ..db.base import iso
from ..db.models import Node
from ..service import caller, controller
from . import access
from .common import fault, listing, one

router = APIRouter()


def shape(node: Node) -> dict[str, Any]:
    return {"id": node.id, "agent_type": "atwill agent", "binary": "atwill-agent",
            "host": node.name, "topic": "N/A", "availability_zone": node.availability_zone,
            "alive": node.state == "up", "admin_state_up": node.enabled,
            "description": None, "created_at": iso(node.created_at),
            "started_at": iso(node.created_at), "heartbeat_timestamp": iso(node.last_heartbeat),
            "configurations": {"overlay_ip": node.overlay_ip, "tunnel_types": ["vxlan"]},
            "resources_synced": None, "ha_state": None}


@router.get("/v2.0/agents")
def agents_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_agent", None)
    with controller(request).db.session() as session:
        items = [shape(n) for n in session.scalars(select(Node).order_by(Node.name))]
    return listing(request, "agents", items)


@router.get("/v2.0/agents/{agent_id}")
def agent_get(agent_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_agent", None)
    with controller(request).db.session() as session:
        node = session.get(Node, agent_id)
        if node is None:
            raise fault(NotFound, "AgentNotFound", f"Agent {agent_id} could not be found.")
        return one(request, "agent", shape(node))
