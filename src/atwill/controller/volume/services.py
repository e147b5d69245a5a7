"""/v3/os-services: the scheduler on the controller and a volume service per storage node.

A storage node's cinder-volume is enabled or disabled here (PUT os-services/enable,
disable, disable-log-reason), apart from its nova-compute service (Node.volume_disabled,
not Node.enabled): a disabled one takes no new volumes, and keeps serving the ones it has.
"""

from __future__ import annotations

import socket
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from ...core import volume_service_update
from ...core.errors import BadRequest, NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.base import utcnow
from ..db.compute import Node
from ..service import controller, json_body
from . import freeze
from .common import api_version, require_admin, stamp, who
from .placement import storage_nodes

router = APIRouter()
BACKEND_POLICIES = {"freeze": "volume:freeze_host", "thaw": "volume:thaw_host",
                    "failover_host": "volume:failover_host"}


def _service(binary: str, host: str, enabled: bool, up: bool, updated: Any,
             reason: str | None, version: Version, frozen: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "binary": binary, "host": host, "zone": "nova",
        "status": "enabled" if enabled else "disabled", "state": "up" if up else "down",
        "updated_at": stamp(updated), "disabled_reason": reason,
    }
    if version >= "3.7":
        body["cluster"] = None
    if binary == "cinder-volume":
        body.update(replication_status="disabled", active_backend_id=None, frozen=frozen)
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
        services += [_service("cinder-volume", f"{n.name}@atwill", not n.volume_disabled,
                              n.state == "up" and not n.forced_down, n.last_heartbeat,
                              n.volume_disabled_reason, version, n.volume_frozen)
                     for n in storage_nodes(session)]
    params = request.query_params
    return {"services": [s for s in services
                         if params.get("binary") in (None, s["binary"])
                         and params.get("host") in (None, s["host"], s["host"].split("@")[0])]}


@router.put("/v3/os-services/{action}", response_model=None)
def services_put(action: str, request: Request, creds: Credentials = Depends(who),
                 body: dict = Depends(json_body),
                 version: Version = Depends(api_version)) -> dict | Response:
    """Cinder's enable / disable / disable-log-reason of a cinder-volume service, and its
    freeze / thaw (failover_host refused: no replication)."""
    if action in volume_service_update.BACKEND_ACTIONS:
        require_admin(creds, BACKEND_POLICIES[action])
        act = volume_service_update.parse_backend(
            action, body, version >= volume_service_update.REPLICATION_CLUSTER)
        with controller(request).db.session() as session:
            freeze.apply(session, act)
        return Response(status_code=200)  # Cinder's: 200, no body
    require_admin(creds, "volume_extension:services:update")
    update = volume_service_update.parse(action, body)
    with controller(request).db.session() as session:
        node = _volume_service(session, update.host, update.binary)
        node.volume_disabled = update.disabled
        if update.sets_reason:
            node.volume_disabled_reason = update.reason
    return update.echo


def _volume_service(session: Session, host: str, binary: str) -> Node:
    """The storage node whose cinder-volume the host names: 'node1@atwill', or 'node1'
    (Cinder matches a bare host against its host@backend services)."""
    if binary == "cinder-scheduler" and host.split("@")[0] == socket.gethostname():
        raise BadRequest("Invalid input received: this cloud's cinder-scheduler runs in "
                         "every controller and cannot be disabled; disable the "
                         "cinder-volume services of storage nodes instead.")
    name, _, backend = host.partition("@")
    if binary == "cinder-volume" and backend in ("", "atwill"):
        for node in storage_nodes(session):
            if node.name == name:
                return node
    raise NotFound(f"Service {binary} could not be found on host {host}.")
