"""/v3/os-availability-zone: the zones of the storage nodes whose volume service is enabled."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ...core.policy import Credentials
from ..service import controller
from .common import who
from .placement import storage_nodes

router = APIRouter()


@router.get("/v3/os-availability-zone")
def zones_get(request: Request, _creds: Credentials = Depends(who)) -> dict:
    with controller(request).db.session() as session:
        nodes = [n for n in storage_nodes(session) if not n.volume_disabled]
        up = any(n.state == "up" and not n.forced_down for n in nodes)
    # Every storage node serves Cinder's default zone (node zones are compute aggregates).
    zones = [{"zoneName": "nova", "zoneState": {"available": up}}] if nodes else []
    return {"availabilityZoneInfo": zones}
