"""/cluster/v1/nodes/{node}/fence…: fence devices and fencing, for cloud admins only."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from ...api.fencing import FenceDeviceSet, FenceResultView
from ...core.policy import Credentials
from ..cluster import nodes
from ..service import authorize, caller, controller
from . import api, devices

router = APIRouter()


@router.get("/v1/fence-devices", summary="List every node's fence devices (secrets masked)")
def devices_get(request: Request, creds: Credentials = Depends(caller)) -> list[dict]:
    authorize(creds, "cluster:fence:list")
    with controller(request).db.session() as session:
        return [devices.to_view(d) for d in devices.listing(session)]


@router.get("/v1/nodes/{ident}/fence", summary="A node's fencing state, devices and records")
def fence_get(ident: str, request: Request,
              creds: Credentials = Depends(caller)) -> dict[str, Any]:
    authorize(creds, "cluster:fence:show")
    with controller(request).db.session() as session:
        return api.status(session, nodes.find(session, ident))


@router.put("/v1/nodes/{ident}/fence/devices/{name}",
            summary="Create or replace one of a node's fence devices")
def device_put(ident: str, name: str, body: FenceDeviceSet, request: Request,
               creds: Credentials = Depends(caller)) -> dict[str, Any]:
    authorize(creds, "cluster:fence:update")
    ctl = controller(request)
    with ctl.db.session() as session:
        node = nodes.find(session, ident)
        device = devices.set_device(ctl, session, node.name, body.agent, body.options,
                                    body.level, name, body.timeout)
        return devices.to_view(device)


@router.delete("/v1/nodes/{ident}/fence/devices/{name}", status_code=204,
               summary="Remove one of a node's fence devices")
def device_delete(ident: str, name: str, request: Request,
                  creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "cluster:fence:update")
    with controller(request).db.session() as session:
        devices.remove(session, nodes.find(session, ident).name, name)
    return Response(status_code=204)


@router.post("/v1/nodes/{ident}/fence/test",
             summary="Ask every fence device of the node for its power status")
def fence_test(ident: str, request: Request, creds: Credentials = Depends(caller)) -> list:
    authorize(creds, "cluster:fence:test")
    ctl = controller(request)
    with ctl.db.session() as session:
        return api.test_node(ctl, session, nodes.find(session, ident))


@router.post("/v1/nodes/{ident}/fence/off", response_model=FenceResultView,
             summary="Fence the node now: power it off through its devices, level by level")
def fence_off(ident: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "cluster:fence:fence")
    ctl = controller(request)
    with ctl.db.session() as session:
        return dataclasses.asdict(api.fence_node(ctl, session, nodes.find(session, ident)))


@router.post("/v1/nodes/{ident}/fence/confirm", response_model=FenceResultView,
             summary="Confirm by hand that the node is off (it then counts as fenced)")
def fence_confirm(ident: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "cluster:fence:confirm")
    with controller(request).db.session() as session:
        return dataclasses.asdict(api.confirm(session, nodes.find(session, ident)))
