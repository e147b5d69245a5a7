"""/v2.0/quotas: per-project network limits (show, details, defaults, update, reset)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ...core import netquota
from ...core.errors import BadRequest
from ...core.policy import Credentials
from ..db.models import Project
from ..db.network import NetworkQuota
from ..service import caller, controller, json_body, wrapped
from . import access, quota
from .common import fault, flag, transaction

router = APIRouter()
ONE = "/v2.0/quotas/{project_id}"


@router.get("/v2.0/quotas")
def quotas_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:list_quotas", None)
    with controller(request).db.session() as session:
        projects = sorted(set(session.scalars(select(NetworkQuota.project_id))))
        return {"quotas": [{**quota.limits(session, p), "project_id": p, "tenant_id": p}
                           for p in projects]}


@router.get(ONE)
def quota_get(project_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_quota", project_id)
    with controller(request).db.session() as session:
        return {"quota": quota.limits(session, project_id)}


@router.get(ONE + "/default")
def quota_default_get(project_id: str, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_quota", project_id)
    return {"quota": dict(netquota.DEFAULTS)}


@router.get(ONE + "/details")
@router.get(ONE + "/details.json")
def quota_details_get(project_id: str, request: Request,
                      creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_quota", project_id)
    with controller(request).db.session() as session:
        limits, used = quota.limits(session, project_id), quota.usage(session, project_id)
    return {"quota": {r: {"limit": limits[r], "used": used[r], "reserved": 0}
                      for r in netquota.DEFAULTS}}


@router.put(ONE)
def quota_put(project_id: str, request: Request, body: dict = Depends(json_body),
              creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:update_quota", project_id)
    data = dict(wrapped(body, "quota"))
    check_limit = flag(data, "check_limit", False) and not flag(data, "force", False)
    data.pop("check_limit", None)
    data.pop("force", None)
    wanted = _parse(data)

    def work(session: Session) -> dict[str, Any]:
        if session.get(Project, project_id) is None:
            raise BadRequest(f"Project {project_id} does not exist.")
        used = quota.usage(session, project_id)
        for resource, limit in wanted.items():
            if check_limit and netquota.over(limit, used[resource], 0):
                raise fault(BadRequest, "InvalidQuotaValue", f"Change would make usage less "
                            f"than 0 for the following resources: ['{resource}'].")
            row = session.scalar(select(NetworkQuota).where(
                NetworkQuota.project_id == project_id, NetworkQuota.resource == resource))
            if row is None:
                session.add(NetworkQuota(project_id=project_id, resource=resource,
                                         hard_limit=limit))
            else:
                row.hard_limit = limit
        session.flush()
        return quota.limits(session, project_id)
    return {"quota": transaction(request, work, changes=False)}


@router.delete(ONE)
def quota_delete(project_id: str, request: Request,
                 creds: Credentials = Depends(caller)) -> Response:
    access.check(creds, "network:delete_quota", project_id)
    with controller(request).db.session() as session:
        session.execute(delete(NetworkQuota).where(NetworkQuota.project_id == project_id))
    return Response(status_code=204)


def _parse(data: dict[str, Any]) -> dict[str, int]:
    wanted = {}
    for resource, value in data.items():
        try:
            wanted[resource] = netquota.validate_limit(resource, value)
        except ValueError as err:
            raise BadRequest(f"Invalid input for {resource}. Reason: {err}.") from None
    return wanted
