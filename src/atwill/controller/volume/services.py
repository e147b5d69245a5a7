"""/v3/os-services: the scheduler on the controller and a volume service per storage node."""

from __future__ import annotations

import socket
from typing import Any

from fastapi import APIRouter, Depends, Request

from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.base import utcnow
from ..service import controller
from .common import api_version, require_admin, stamp, who
from .placement import storage_nodes

router = APIRouter()


def _service(binary: str, host: str, enabled: bool, up: bool, updated: Any,
             reason: str | None, version: Version) -> dict[str, Any]:
    body: dict[str, Any] = {
        "binary": binary, "host": host, "zone": "nova",
        "status": "enabled" if enabled else "disabled", "state": "up" if up else "down",
        "updated_at": stamp(updated), "disabled_reason": reason,
    }
    if version >= "3.7":
        body["cluster"] = None
    if binary == "cinder-volume":
        body.update(replication_status="disabled", active_backend_id=None, frozen=False)
        if version >= "3.49":
            body["backend_state"] = "up" if up else "down"
    return body


@router.get("/v3/os-services")
def services_get(request: Request, creds: Credentials = Depends(who),
                 version: Version = Depends(api_version)) -> dict:
    require_admin(creds, "volume_extension:services:index")
    with controller(request).db.session() as session:
        services = [_service("cinder-scheduler", socket.gethostname(), True, True, utcnow(),
                             None, version)]
        services += [_service("cinder-volume", f"{n.name}@atwill", n.enabled,
                              n.state == "up" and not n.forced_down, n.last_heartbeat,
                              n.disabled_reason, version)
                     for n in storage_nodes(session)]
    params = request.query_params
    return {"services": [s for s in services
                         if params.get("binary") in (None, s["binary"])
                         and params.get("host") in (None, s["host"], s["host"].split("@")[0])]}
