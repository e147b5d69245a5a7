"""/os-simple-tenant-usage: each project's instance hours, vCPU, RAM and disk hours.

Figures come from the instance records (first launch and termination times), deleted
instances included, as Nova's, and from each instance's usage events (resizes, shelving;
core/usage_timeline.py); 2.40 pages over instances with limit and marker.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ...core import tenant_usage, usage_timeline
from ...core.errors import NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.base import utcnow
from ..db.models import Instance, UsageEvent
from ..service import authorize, caller, controller
from .common import api_version, paginated, query_bool

router = APIRouter()
BASE = "/v2.1/os-simple-tenant-usage"


@router.get(BASE)
def tenant_usages_get(request: Request, creds: Credentials = Depends(caller),
                      version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:simple_tenant_usage:list")
    start, stop, now = _window(request)
    detailed = bool(query_bool(request, "detailed"))
    records, more = _records(request, version, start, stop, None, "tenant_usages_links")
    usages = tenant_usage.by_project(records, start, stop, now, detailed)
    return {"tenant_usages": usages, **more}


@router.get(BASE + "/")
def tenant_usage_empty_get(creds: Credentials = Depends(caller)) -> dict:
    """A show with an empty project id is Nova's 404, not (via a slash redirect) the list."""
    authorize(creds, "compute:simple_tenant_usage:show", project_id=creds.project_id)
    raise NotFound("No project id was given in the URL.")


@router.get(BASE + "/{project_id}")
def tenant_usage_get(project_id: str, request: Request, creds: Credentials = Depends(caller),
                     version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:simple_tenant_usage:show", project_id=project_id)
    start, stop, now = _window(request)
    records, more = _records(request, version, start, stop, project_id, "tenant_usage_links")
    usages = tenant_usage.by_project(records, start, stop, now, detailed=True)
    # Nova answers an empty object for a project with no usage in the window.
    return {"tenant_usage": usages[0] if usages else {}, **more}


def _window(request: Request) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    now = utcnow()
    params = request.query_params
    start = tenant_usage.parse_time(params.get("start"), now)
    stop = tenant_usage.parse_time(params.get("end"), now + dt.timedelta(microseconds=1))
    tenant_usage.window(start, stop)
    return start, stop, now


def _records(request: Request, version: Version, start: dt.datetime, stop: dt.datetime,
             project_id: str | None, links_key: str
             ) -> tuple[list[tenant_usage.Record], dict[str, Any]]:
    # launched_at moves on at an unshelve: an instance created before stop may have run.
    query = select(Instance).where(
        Instance.launched_at.is_not(None), Instance.created_at < stop,
        or_(Instance.terminated_at.is_(None), Instance.terminated_at > start)
    ).order_by(Instance.created_at, Instance.id)
    if project_id is not None:
        query = query.where(Instance.project_id == project_id)
    with controller(request).db.session() as session:
        instances = list(session.scalars(query))
        steps = _steps(session, [inst.id for inst in instances])
        rows = [_record(inst, steps.get(inst.id, [])) for inst in instances]
    rows = [r for r in rows if r.launched_at < stop]
    if not version >= "2.40":
        return rows, {}
    path = BASE.removeprefix("/v2.1/") + ("" if project_id is None else f"/{project_id}")
    return paginated(request, rows, lambda r: r.instance_id, path, links_key)


CHUNK = 500  # instance ids per IN (…) of the events' query


def _steps(session: Session, ids: list[str]) -> dict[str, list[usage_timeline.Step]]:
    """Each instance's usage events, in the order recorded."""
    out: dict[str, list[usage_timeline.Step]] = defaultdict(list)
    for i in range(0, len(ids), CHUNK):
        rows = session.execute(select(
            UsageEvent.instance_id, UsageEvent.occurred_at, UsageEvent.state,
            UsageEvent.vcpus, UsageEvent.memory_mb, UsageEvent.disk_gb).where(
            UsageEvent.instance_id.in_(ids[i:i + CHUNK])).order_by(UsageEvent.id))
        for ident, at, state, vcpus, memory_mb, disk_gb in rows:
            out[ident].append(usage_timeline.Step(at, state, vcpus, memory_mb, disk_gb))
    return out


def _record(inst: Instance, steps: Sequence[usage_timeline.Step]) -> tenant_usage.Record:
    flavor = inst.flavor or {}
    ephemeral = int(flavor.get("ephemeral") or 0)
    begin = usage_timeline.first_launch(inst.launched_at or inst.created_at, steps)
    spans = usage_timeline.spans(begin, inst.terminated_at, steps,
                                 (inst.vcpus, inst.memory_mb, inst.disk_gb), ephemeral)
    return tenant_usage.Record(
        instance_id=inst.id, name=inst.name, project_id=inst.project_id,
        flavor=flavor.get("name", ""), vcpus=inst.vcpus, memory_mb=inst.memory_mb,
        local_gb=inst.disk_gb + ephemeral, state=inst.vm_state,
        launched_at=begin, terminated_at=inst.terminated_at, spans=tuple(spans))
