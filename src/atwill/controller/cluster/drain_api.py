"""/cluster/v1/nodes/{node}/drain and /restore for operators (what the dashboard calls).

POST drain disables the node (reason "draining") and records the drain in the database
(cluster/drain.py); the leader's drain loop (drain_loop.py) moves its instances away, in
whichever worker or controller leads, and goes on after a restart. GET shows how far it
is, from the database, in any worker. POST again while it runs changes nothing; once it
ended, it starts over with what is left. POST restore enables the node, which stops it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ...core.policy import Credentials
from ..context import Controller
from ..service import authorize, caller, controller
from . import drain, nodes
from .nodecert import calling_node

router = APIRouter()


class DrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parallel: int = Field(default=2, ge=1, le=16, description="Instances moving at once.")


def _view(ctl: Controller, ident: str) -> dict:
    with ctl.db.session() as session:
        node = nodes.find(session, ident)
        return drain.view(session, node, len(nodes.instances_on(session, node)))


def _start(ctl: Controller, ident: str, parallel: int) -> dict:
    """Record the drain (or leave the one under way as it is); its view."""
    with ctl.db.session() as session:
        drain.begin(session, nodes.find(session, ident), parallel)
    return _view(ctl, ident)


@router.post("/v1/nodes/{ident}/drain", status_code=202,
             summary="Disable a node and move every instance away from it")
def node_drain(ident: str, request: Request, body: DrainRequest | None = None,
               creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "cluster:nodes:update")
    return _start(controller(request), ident, (body or DrainRequest()).parallel)


@router.post("/v1/nodes/{node_id}/leave/drain", status_code=202,
             summary="The node drains itself before it leaves (atwill leave --drain)")
def leave_drain(node_id: str, request: Request) -> dict:
    ctl = controller(request)
    with ctl.db.session() as session:
        calling_node(session, request, node_id)
    return _start(ctl, node_id, DrainRequest().parallel)


@router.get("/v1/nodes/{node_id}/leave/drain", summary="How far the node's own drain is")
def leave_drain_get(node_id: str, request: Request) -> dict:
    ctl = controller(request)
    with ctl.db.session() as session:
        calling_node(session, request, node_id)
    return _view(ctl, node_id)


@router.get("/v1/nodes/{ident}/drain", summary="How far a node's drain is")
def node_drain_get(ident: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "cluster:nodes:show")
    return _view(controller(request), ident)


@router.post("/v1/nodes/{ident}/restore", summary="Schedule onto a drained node again")
def node_restore(ident: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "cluster:nodes:update")
    ctl = controller(request)
    with ctl.db.session() as session:
        drain.restore(session, nodes.find(session, ident))
    return _view(ctl, ident)
