"""/cluster/v1/nodes/{node}/drain and /restore for operators (what the dashboard calls).

POST drain disables the node (reason "draining") and moves its instances away in a
thread of this controller process (cluster/drain.py); GET shows how far it is. POST
again while it runs changes nothing; after a restart (or once it ended), it continues
with what is left. POST restore enables the node, which stops a running drain.
"""

from __future__ import annotations

import logging
import threading

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ...core.errors import ApiError
from ...core.policy import Credentials
from ..context import Controller
from ..service import authorize, caller, controller
from . import drain, nodes
from .nodecert import calling_node

router = APIRouter()
log = logging.getLogger("atwill.cluster.drain")
_runs: dict[str, drain.Run] = {}  # node id -> this process's latest run
_threads: dict[str, threading.Thread] = {}
_lock = threading.Lock()


class DrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parallel: int = Field(default=2, ge=1, le=16, description="Instances moving at once.")


def _drive(ctl: Controller, run: drain.Run) -> None:
    try:
        drain.run_until_done(ctl, run, lambda _: None)
    except ApiError as err:  # restored (or removed) while it ran
        log.info("drain of %s ended: %s", run.node_name, err)
    except Exception:  # noqa: BLE001 - a thread's failure must be logged, not lost
        log.exception("drain of %s failed", run.node_name)


def _view(ctl: Controller, ident: str) -> dict:
    with ctl.db.session() as session:
        node = nodes.find(session, ident)
        thread = _threads.get(node.id)
        # A run in another worker process shows as its migrations under way.
        running = bool(thread and thread.is_alive()) or drain.moving_from(session, node)
        return {**drain.view(_runs.get(node.id), node, len(nodes.instances_on(session, node))),
                "running": running}


def _start(ctl: Controller, ident: str, parallel: int) -> dict:
    """Start a run unless one runs in this process; the drain's view."""
    with _lock:
        with ctl.db.session() as session:
            node = nodes.find(session, ident)
            thread = _threads.get(node.id)
            start = None
            if thread is None or not thread.is_alive():
                run = drain.begin(session, node, parallel)
                _runs[node.id] = run
                start = _threads[node.id] = threading.Thread(
                    target=_drive, args=(ctl, run), name=f"drain-{node.name}", daemon=True)
        if start is not None:
            start.start()
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
