"""/v3/os-quota-sets, /v3/os-quota-class-sets and /v3/limits (Cinder's quotas)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import delete
from sqlalchemy.orm import Session

from ...core import volume_quotas
from ...core.errors import BadRequest, Forbidden, NotFound
from ...core.policy import Credentials
from ...core.text import clean_name
from ..db.models import Project
from ..db.volume import VolumeQuota, VolumeQuotaClass
from ..service import controller, json_body, wrapped
from .common import query_bool, require_admin, who
from .usage import class_limits, project_limits, project_usage, type_names

router = APIRouter()
SETS, CLASSES = "/v3/os-quota-sets/{project_id}", "/v3/os-quota-class-sets/{class_name}"
LIMIT_NAMES = {"maxTotalVolumes": "volumes", "maxTotalSnapshots": "snapshots",
               "maxTotalVolumeGigabytes": "gigabytes", "maxTotalBackups": "backups",
               "maxTotalBackupGigabytes": "backup_gigabytes"}
USED_NAMES = {"totalVolumesUsed": "volumes", "totalSnapshotsUsed": "snapshots",
              "totalGigabytesUsed": "gigabytes", "totalBackupsUsed": "backups",
              "totalBackupGigabytesUsed": "backup_gigabytes"}


def _may_read(creds: Credentials, project_id: str) -> None:
    if not creds.reads_all and creds.project_id != project_id:
        raise Forbidden("Policy doesn't allow volume_extension:quotas:show to be performed.")


def _project(session: Session, project_id: str) -> None:
    if session.get(Project, project_id) is None:
        raise NotFound(f"Project {project_id[:64]} could not be found.")


def _limits_input(session: Session, data: dict[str, Any]) -> dict[str, int]:
    known = set(volume_quotas.names(type_names(session)))
    given = {k: v for k, v in data.items() if k not in ("id", "tenant_id")}
    bad = sorted(set(given) - known)
    if bad:
        raise BadRequest(f"Bad key(s) in quota set: {', '.join(k[:64] for k in bad)}")
    return {k: volume_quotas.parse_limit(k, v) for k, v in given.items()}


@router.get(SETS)
def quota_set_get(project_id: str, request: Request, creds: Credentials = Depends(who)) -> dict:
    _may_read(creds, project_id)
    usage = query_bool(request.query_params.get("usage"), "usage")
    with controller(request).db.session() as session:
        _project(session, project_id)
        limits = project_limits(session, project_id)
        if not usage:
            return {"quota_set": {"id": project_id, **limits}}
        used = project_usage(session, project_id)
    detail = {n: {"limit": limit, "in_use": used.get(n, 0), "reserved": 0}
              for n, limit in limits.items()}
    return {"quota_set": {"id": project_id, **detail}}


@router.get(SETS + "/defaults")
def quota_defaults_get(project_id: str, request: Request,
                       creds: Credentials = Depends(who)) -> dict:
    with controller(request).db.session() as session:
        _project(session, project_id)
        return {"quota_set": {"id": project_id, **class_limits(session)}}


@router.put(SETS)
def quota_set_put(project_id: str, request: Request, body: dict = Depends(json_body),
                  creds: Credentials = Depends(who)) -> dict:
    require_admin(creds, "volume_extension:quotas:update")
    data = wrapped(body, "quota_set")
    with controller(request).db.session() as session:
        _project(session, project_id)
        wanted = _limits_input(session, data)
        used = project_usage(session, project_id)
        for resource, limit in wanted.items():
            if 0 <= limit < used.get(resource, 0):
                raise BadRequest(f"Invalid input received: Quota limit {limit} for "
                                 f"{resource} must be equal or greater than existing "
                                 f"resources. Current usage is {used[resource]}.")
            row = session.get(VolumeQuota, (project_id, resource))
            if row is None:
                session.add(VolumeQuota(project_id=project_id, resource=resource,
                                        hard_limit=limit))
            else:
                row.hard_limit = limit
        session.flush()
        return {"quota_set": project_limits(session, project_id)}


@router.delete(SETS)
def quota_set_delete(project_id: str, request: Request,
                     creds: Credentials = Depends(who)) -> JSONResponse:
    require_admin(creds, "volume_extension:quotas:delete")
    with controller(request).db.session() as session:
        _project(session, project_id)
        session.execute(delete(VolumeQuota).where(VolumeQuota.project_id == project_id))
    return JSONResponse({}, status_code=200)


@router.get(CLASSES)
def quota_class_get(class_name: str, request: Request,
                    creds: Credentials = Depends(who)) -> dict:
    require_admin(creds, "volume_extension:quota_classes")
    with controller(request).db.session() as session:
        return {"quota_class_set": {"id": class_name, **class_limits(session, class_name)}}


@router.put(CLASSES)
def quota_class_put(class_name: str, request: Request, body: dict = Depends(json_body),
                    creds: Credentials = Depends(who)) -> dict:
    require_admin(creds, "volume_extension:quota_classes")
    clean_name(class_name, "class_name", 255)
    data = wrapped(body, "quota_class_set")
    with controller(request).db.session() as session:
        for resource, limit in _limits_input(session, data).items():
            row = session.get(VolumeQuotaClass, (class_name, resource))
            if row is None:
                session.add(VolumeQuotaClass(class_name=class_name, resource=resource,
                                             hard_limit=limit))
            else:
                row.hard_limit = limit
        session.flush()
        return {"quota_class_set": class_limits(session, class_name)}


@router.get("/v3/limits")
def limits_get(request: Request, creds: Credentials = Depends(who)) -> dict:
    project_id = creds.project_id
    if creds.reads_all and request.query_params.get("project_id"):
        project_id = request.query_params["project_id"]
    with controller(request).db.session() as session:
        limits = project_limits(session, project_id) if project_id else class_limits(session)
        used = project_usage(session, project_id) if project_id else {}
    absolute = {k: limits.get(v, -1) for k, v in LIMIT_NAMES.items()}
    absolute.update({k: used.get(v, 0) for k, v in USED_NAMES.items()})
    return {"limits": {"rate": [], "absolute": absolute}}
