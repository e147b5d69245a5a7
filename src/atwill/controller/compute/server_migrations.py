"""Live migration's API: os-migrateLive (a server action), /servers/{id}/migrations
(2.22 force complete, 2.23 list and show, 2.24 abort) and /os-migrations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ...core import migration_states
from ...core.errors import BadRequest, NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ..context import Controller
from ..db.models import Instance, Migration
from ..revision import bump
from ..servers import builds, live_migration, live_migration_volumes
from ..service import authorize, caller, controller, json_body
from .common import api_version, base, paginated, require

router = APIRouter()


def run_live(session: Session, ctl: Controller, inst: Instance, args: Any, request_id: str,
             creds: Credentials, version: Version) -> Response:
    """The os-migrateLive action (admin only, as Nova's default policy): 202."""
    authorize(creds, "compute:servers:migrate_live", project_id=inst.project_id)
    body = migration_states.parse_live(args, version)
    if not ctl.settings.live_migration:
        raise BadRequest("Migration pre-check error: live migration is turned off on this "
                         "cloud (setting live_migration).")
    if body.block_migration is False and not live_migration_volumes.without_local_disk(
            session, inst):
        # Nova: without block migration only a server booted from a volume (no local
        # disk) moves; its volumes are re-attached, never copied.
        raise BadRequest(f"{inst.id} {migration_states.NO_SHARED_STORAGE}")
    live_migration.start(session, ctl, inst, body, request_id, creds, version)
    bump(session)
    return Response(status_code=202)


def _server(session: Session, server_id: str, creds: Credentials, operation: str) -> Instance:
    inst = builds.get(session, server_id, creds)
    authorize(creds, operation, project_id=inst.project_id)
    return inst


@router.post("/v2.1/servers/{server_id}/migrations/{migration_id}/action",
             status_code=202, response_class=Response)
def server_migration_action_post(server_id: str, migration_id: str, request: Request,
                                 body: dict = Depends(json_body),
                                 creds: Credentials = Depends(caller),
                                 version: Version = Depends(api_version)) -> Response:
    require(version, "2.22")
    if set(body) != {"force_complete"} or body["force_complete"] is not None:
        raise BadRequest("Invalid input for field/attribute action: the body is "
                         '{"force_complete": null}.')
    with controller(request).db.session() as session:
        inst = _server(session, server_id, creds, "compute:servers:migrations:force_complete")
        record = live_migration.get(session, inst, migration_id)
        live_migration.force_complete(session, inst, record,
                                      request.scope["state"]["request_id"], creds.user_id)
        bump(session)
    return Response(status_code=202)


@router.get("/v2.1/servers/{server_id}/migrations")
def server_migrations_get(server_id: str, request: Request,
                          creds: Credentials = Depends(caller),
                          version: Version = Depends(api_version)) -> dict:
    require(version, "2.23")
    with controller(request).db.session() as session:
        inst = _server(session, server_id, creds, "compute:servers:migrations:index")
        found = session.scalars(select(Migration).where(
            Migration.instance_uuid == inst.id, Migration.migration_type == "live-migration",
            Migration.status.in_(migration_states.IN_PROGRESS)).order_by(Migration.id))
        return {"migrations": [migration_states.server_migration_view(m, version)
                               for m in found]}


@router.get("/v2.1/servers/{server_id}/migrations/{migration_id}")
def server_migration_get(server_id: str, migration_id: str, request: Request,
                         creds: Credentials = Depends(caller),
                         version: Version = Depends(api_version)) -> dict:
    require(version, "2.23")
    with controller(request).db.session() as session:
        inst = _server(session, server_id, creds, "compute:servers:migrations:show")
        try:
            record = live_migration.get(session, inst, migration_id)
        except NotFound:
            record = None
        if record is None or record.migration_type != "live-migration" \
                or record.status not in migration_states.IN_PROGRESS:
            raise NotFound(f"In-progress live migration {migration_id} is not found for "
                           f"server {inst.id}.")
        return {"migration": migration_states.server_migration_view(record, version)}


@router.delete("/v2.1/servers/{server_id}/migrations/{migration_id}", status_code=202,
               response_class=Response)
def server_migration_delete(server_id: str, migration_id: str, request: Request,
                            creds: Credentials = Depends(caller),
                            version: Version = Depends(api_version)) -> Response:
    require(version, "2.24")
    with controller(request).db.session() as session:
        inst = _server(session, server_id, creds, "compute:servers:migrations:delete")
        record = live_migration.get(session, inst, migration_id)
        live_migration.abort(session, inst, record, version,
                             request.scope["state"]["request_id"], creds.user_id)
        bump(session)
    return Response(status_code=202)


@router.get("/v2.1/os-migrations")
def migrations_get(request: Request, creds: Credentials = Depends(caller),
                   version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:migrations:index")
    filters = migration_states.list_filters(request.query_params, version)
    query = select(Migration).order_by(Migration.created_at.desc(), Migration.id.desc())
    host = filters.pop("host", None)
    if host is not None:
        query = query.where(or_(Migration.source_compute == host,
                                Migration.dest_compute == host))
    for key, value in filters.items():
        query = query.where(getattr(Migration, key) == value)
    with controller(request).db.session() as session:
        found = list(session.scalars(query))
    root = base(request)
    out: dict[str, Any] = {}
    if version >= "2.59":
        found, out = paginated(request, found, lambda m: m.uuid, "os-migrations",
                               "migrations_links")
    return {"migrations": [migration_states.os_migration_view(m, version, root)
                           for m in found], **out}
