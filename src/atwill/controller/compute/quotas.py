"""/os-quota-sets (show, detail, defaults, update, reset) and /os-quota-class-sets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ...core import quotas
from ...core.errors import BadRequest
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.compute import Quota, QuotaClass
from ..db.models import Project
from ..service import authorize, caller, controller, json_body, wrapped
from .common import api_version
from .usage import class_limits, project_limits, project_usage

router = APIRouter()
SETS, CLASSES = "/v2.1/os-quota-sets/{project_id}", "/v2.1/os-quota-class-sets/{class_name}"
MAX_LIMIT = 2**31 - 1


def set_names(version: Version) -> list[str]:
    # 'networks' belonged to nova-network and is in no quota set Nova still answers.
    return [n for n in quotas.visible(version.minor) if n != "networks"]


def class_names(version: Version) -> list[str]:
    """Quota classes gained server groups and lost the network resources together at 2.50."""
    if version.minor < 50:
        return [n for n in set_names(version)
                if n not in ("server_groups", "server_group_members")]
    return quotas.visible(max(version.minor, 36))


@router.get(SETS)
def quota_set_get(project_id: str, request: Request, creds: Credentials = Depends(caller),
                  version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:quotas:show", project_id=project_id)
    with controller(request).db.session() as session:
        _check_project(session, project_id)
        limits = project_limits(session, project_id)
    return {"quota_set": {"id": project_id, **{n: limits[n] for n in set_names(version)}}}


@router.get(SETS + "/detail")
def quota_set_detail_get(project_id: str, request: Request,
                         creds: Credentials = Depends(caller),
                         version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:quotas:show", project_id=project_id)
    user_id = request.query_params.get("user_id") or creds.user_id
    with controller(request).db.session() as session:
        _check_project(session, project_id)
        limits = project_limits(session, project_id)
        used = project_usage(session, project_id, user_id)
    detail = {n: {"limit": limits[n], "in_use": used[n], "reserved": 0}
              for n in set_names(version)}
    return {"quota_set": {"id": project_id, **detail}}


@router.get(SETS + "/defaults")
def quota_set_defaults_get(project_id: str, request: Request,
                           creds: Credentials = Depends(caller),
                           version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:quotas:defaults")
    with controller(request).db.session() as session:
        _check_project(session, project_id)
        limits = class_limits(session)
    return {"quota_set": {"id": project_id, **{n: limits[n] for n in set_names(version)}}}


@router.put(SETS)
def quota_set_put(project_id: str, request: Request, body: dict = Depends(json_body),
                  creds: Credentials = Depends(caller),
                  version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:quotas:update", project_id=project_id)
    data = dict(wrapped(body, "quota_set"))
    force = _force(data.pop("force", False))
    wanted = _parse_limits(data, set_names(version))
    with controller(request).db.session() as session:
        _check_project(session, project_id)
        if not force:
            # Key pairs belong to users: only the user named (Nova's ?user_id=) is
            # counted, never the caller's own (an admin's key pairs are not the project's).
            _check_usage(project_usage(session, project_id,
                                       request.query_params.get("user_id")), wanted)
        for resource, limit in wanted.items():
            row = session.scalar(select(Quota).where(Quota.project_id == project_id,
                                                     Quota.resource == resource))
            if row is None:
                session.add(Quota(project_id=project_id, resource=resource, hard_limit=limit))
            else:
                row.hard_limit = limit
        session.flush()
        limits = project_limits(session, project_id)
    return {"quota_set": {n: limits[n] for n in set_names(version)}}


@router.delete(SETS)
def quota_set_delete(project_id: str, request: Request,
                     creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "compute:quotas:delete", project_id=project_id)
    with controller(request).db.session() as session:
        _check_project(session, project_id)
        session.execute(delete(Quota).where(Quota.project_id == project_id))
    return Response(status_code=202)


@router.get(CLASSES)
def quota_class_get(class_name: str, request: Request, creds: Credentials = Depends(caller),
                    version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:quota_classes:show")
    with controller(request).db.session() as session:
        limits = class_limits(session, class_name)
    return {"quota_class_set": {"id": class_name,
                                **{n: limits[n] for n in class_names(version)}}}


@router.put(CLASSES)
def quota_class_put(class_name: str, request: Request, body: dict = Depends(json_body),
                    creds: Credentials = Depends(caller),
                    version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:quota_classes:update")
    if not 1 <= len(class_name) <= 255:
        raise BadRequest("Quota class name must be 1 to 255 characters.")
    wanted = _parse_limits(wrapped(body, "quota_class_set"), class_names(version))
    with controller(request).db.session() as session:
        for resource, limit in wanted.items():
            row = session.scalar(select(QuotaClass).where(
                QuotaClass.class_name == class_name, QuotaClass.resource == resource))
            if row is None:
                session.add(QuotaClass(class_name=class_name, resource=resource,
                                       hard_limit=limit))
            else:
                row.hard_limit = limit
        session.flush()
        limits = class_limits(session, class_name)
    return {"quota_class_set": {n: limits[n] for n in class_names(version)}}


def _check_project(session: Session, project_id: str) -> None:
    if session.get(Project, project_id) is None:
        raise BadRequest(f"Project ID {project_id} is not a valid project.")


def _force(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadRequest(f"Invalid input for field/attribute force: {value!r} is not a boolean.")


def _parse_limits(data: dict[str, Any], allowed: list[str]) -> dict[str, int]:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise BadRequest(f"Invalid input: additional properties are not allowed "
                         f"({', '.join(unknown)} were unexpected).")
    wanted = {}
    for resource, value in data.items():
        try:
            wanted[resource] = quotas.validate_limit(resource, value)
        except ValueError as err:
            raise BadRequest(str(err)) from None
        if wanted[resource] > MAX_LIMIT:
            raise BadRequest(f"Quota limit for {resource} must be at most {MAX_LIMIT}.")
    return wanted


def _check_usage(used: dict[str, int], wanted: dict[str, int]) -> None:
    for resource, limit in wanted.items():
        if limit != quotas.UNLIMITED and limit < used[resource]:
            raise BadRequest(f"Quota limit {limit} for {resource} must be greater than or "
                             f"equal to already used and reserved {used[resource]}.")
