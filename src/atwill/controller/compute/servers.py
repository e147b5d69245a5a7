"""/servers: create, list, show, update, delete."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from ...core.errors import BadRequest, Forbidden, NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ...core.text import clean_name
from ..db.base import utcnow
from ..db.models import Instance
from ..revision import bump
from ..servers import (
    actions,
    builds,
    create_steps,
    placement,
    ports,
    resize,
    shelve,
    snapshots,
    view,
)
from ..servers.locks import serialized
from ..service import authorize, caller, controller, json_body, wrapped
from . import server_listing, server_volumes_state
from .common import api_version, base
from .server_actions import refuse_locked
from .server_input import access_ip, parse_create
from .usage import project_limits

router = APIRouter()
log = logging.getLogger("atwill.servers")


@router.post("/v2.1/servers")
def servers_post(request: Request, body: dict = Depends(json_body),
                 creds: Credentials = Depends(caller),
                 version: Version = Depends(api_version)) -> JSONResponse:
    authorize(creds, "compute:servers:create", project_id=creds.project_id)
    spec = parse_create(body, version)
    if spec["destination"].host is not None:
        # Nova's create:forced_host (the zone form) and create:requested_destination (2.74).
        authorize(creds, "compute:servers:create:forced_host" if spec["destination"].forced
                  else "compute:servers:create:requested_destination",
                  project_id=creds.project_id)
    ctl = controller(request)
    # No retry on a taken address: network/ipalloc.py claims addresses without failing on
    # concurrent creates (issue 19).
    out, reservation = _create(request, ctl, creds, spec,
                               request.scope["state"]["request_id"])
    if spec.get("return_reservation_id"):
        return JSONResponse({"reservation_id": reservation}, status_code=202)
    return JSONResponse({"server": out}, status_code=202)


def _create(request: Request, ctl: Any, creds: Credentials, spec: dict[str, Any],
            request_id: str) -> tuple[dict[str, Any], str]:
    """The create, in a transaction of its own (rolled back whole on error), or on
    PostgreSQL in two (servers/create_steps.py): recorded under the project's quota lock,
    then placed outside it."""
    dialect = ctl.db.engine.dialect.name
    if create_steps.splits(dialect, spec):
        return _create_in_steps(request, ctl, creds, spec, request_id)
    with serialized(dialect), ctl.db.session() as session:
        check_metadata_quota(session, creds.project_id or "", spec["metadata"])
        made = builds.create(session, ctl, creds, spec, request_id)
        first = made[0]
        return view.created(first, base(request), secrets.token_urlsafe(9)), \
            first.reservation_id


def _create_in_steps(request: Request, ctl: Any, creds: Credentials, spec: dict[str, Any],
                     request_id: str) -> tuple[dict[str, Any], str]:
    with ctl.db.session() as session:
        check_metadata_quota(session, creds.project_id or "", spec["metadata"])
        ids = [inst.id for inst in create_steps.record(session, ctl, creds, spec, request_id)]
    try:
        with ctl.db.session() as session:
            first = create_steps.place(session, ctl, creds, ids)[0]
            return view.created(first, base(request), secrets.token_urlsafe(9)), \
                first.reservation_id
    except BaseException:
        # Step 2 failed: the servers recorded are deleted and its error answered. If this
        # fails too, the leader's sweep deletes them after STALE (create_steps.py).
        try:
            with ctl.db.session() as session:
                create_steps.undo(session, ids, request_id, creds)
        except Exception:
            log.exception("server create %s: the servers recorded could not be deleted "
                          "after its scheduling failed; the sweep will take them", request_id)
        raise


def check_metadata_quota(session: Any, project_id: str, meta: dict[str, str]) -> None:
    """Nova's metadata_items quota on a new server: a 403 past the project's limit. No
    metadata is within any limit (limits are >= -1): the limits are not read then."""
    if not meta:
        return
    limit = project_limits(session, project_id)["metadata_items"]
    if limit != -1 and len(meta) > limit:
        raise Forbidden(f"Quota exceeded for metadata_items: Requested {len(meta)}, but the "
                        f"limit is {limit}.")


@router.get("/v2.1/servers")
def servers_get(request: Request, creds: Credentials = Depends(caller),
                version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:servers:index")
    return server_listing.listing(request, creds, version, detailed=False)


@router.get("/v2.1/servers/detail")
def servers_detail_get(request: Request, creds: Credentials = Depends(caller),
                       version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:servers:detail")
    return server_listing.listing(request, creds, version, detailed=True)


@router.get("/v2.1/servers/{server_id}")
def server_get(server_id: str, request: Request, creds: Credentials = Depends(caller),
               version: Version = Depends(api_version)) -> dict:
    with controller(request).db.session() as session:
        inst = builds.get(session, server_id, creds)
        authorize(creds, "compute:servers:show", project_id=inst.project_id)
        return {"server": view.detail(session, inst, version, base(request), creds,
                                      show=True)}


@router.put("/v2.1/servers/{server_id}")
def server_put(server_id: str, request: Request, body: dict = Depends(json_body),
               creds: Credentials = Depends(caller),
               version: Version = Depends(api_version)) -> dict:
    data = wrapped(body, "server")
    allowed = {"name", "description", "hostname"} if version >= "2.90" else {
        "name", "description"}
    unknown = set(data) - allowed - {"accessIPv4", "accessIPv6", "OS-DCF:diskConfig"}
    if unknown:
        raise BadRequest(f"Invalid input: additional properties are not allowed "
                         f"({', '.join(sorted(unknown))}).")
    for key in ("accessIPv4", "accessIPv6"):
        access_ip(data, key)
    with controller(request).db.session() as session:
        inst = builds.get(session, server_id, creds)
        authorize(creds, "compute:servers:update", project_id=inst.project_id)
        if "name" in data:
            name = clean_name(data["name"], required=True)
            if not name.strip():
                raise BadRequest("Invalid input for field 'name': 1 to 255 characters.")
            inst.name = name
        if "description" in data:
            if version < Version(2, 19):
                raise BadRequest("description needs microversion 2.19 or later.")
            inst.description = clean_name(data["description"], "description")
        if "hostname" in data:
            inst.hostname = builds.hostname_of(str(data["hostname"]))
        # The node's desired state carries the name and hostname to the guest's metadata.
        bump(session, of=inst)
        session.flush()
        return {"server": one_server(session, inst, version, base(request), creds)}


def one_server(session: Any, inst: Instance, version: Version, url: str,
               creds: Credentials) -> dict[str, Any]:
    """Update's and rebuild's answer: Nova's short view before 2.75, the full one after."""
    if version >= "2.75":
        return view.detail(session, inst, version, url, creds, show=True)
    return view.partial(session, inst, version, url)


@router.delete("/v2.1/servers/{server_id}")
def server_delete(server_id: str, request: Request,
                  creds: Credentials = Depends(caller)) -> Response:
    ctl = controller(request)
    with serialized(ctl.db.engine.dialect.name), ctl.db.session() as session:
        inst = builds.get(session, server_id, creds)
        authorize(creds, "compute:servers:delete", project_id=inst.project_id)
        create_steps.settle(session, inst)  # a create's step 2 placing it: waited for
        if inst.deleted:
            raise NotFound(f"Instance {server_id} could not be found.")
        refuse_locked(inst, creds)
        shelve.drop_image(session, ctl, inst)  # Nova deletes a shelved server's snapshot
        delete(session, inst, request.scope["state"]["request_id"], creds)
    return Response(status_code=204)


def delete(session: Any, inst: Instance, request_id: str, creds: Credentials) -> None:
    """Soft-delete at once; the node's agent tears the VM down when its state moves."""
    server_volumes_state.lock_for_delete(session, inst)  # before the compute node's row
    actions.start(session, inst.id, "delete", request_id, creds.user_id, creds.project_id)
    ports.free(session, inst)
    resize.on_server_delete(session, inst)
    placement.release(session, inst)
    snapshots.abandon(session, inst)  # Nova deletes the image of an unfinished snapshot
    server_volumes_state.on_server_delete(session, inst)
    inst.deleted, inst.vm_state, inst.task_state = True, "deleted", None
    inst.terminated_at = utcnow()
    bump(session, of=inst)
