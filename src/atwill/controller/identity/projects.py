"""/v3/projects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import delete, select

from ...core.errors import BadRequest, Conflict
from ...core.policy import Credentials
from ...core.text import clean_name, shown
from ..db.models import Domain, Project, Quota
from ..service import authorize, caller, controller, field, json_body, wrapped
from . import views
from .common import base, filtered, get_or_404, listing, name_of

router = APIRouter()
# Keystone's limits on project tags.
MAX_TAGS, MAX_TAG_LENGTH = 80, 255


def tags_of(data: dict[str, Any]) -> list[str]:
    """Project tags as Keystone takes them: at most 80 strings without '/' or ','."""
    tags = data.get("tags")
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise BadRequest(f"Invalid input for field 'project.tags': {shown(tags)} is not "
                         "an array of strings.")
    if len(tags) > MAX_TAGS:
        raise BadRequest(f"Invalid input for field 'project.tags': at most {MAX_TAGS} "
                         "tags are allowed.")
    for tag in tags:
        clean_name(tag, "project.tags", MAX_TAG_LENGTH, required=True)
        if not tag.strip() or "/" in tag or "," in tag:
            raise BadRequest(f"Invalid input for field 'project.tags': {shown(tag)} must be "
                             "non-empty and hold no '/' or ','.")
    return list(dict.fromkeys(tags))


@router.get("/v3/projects")
def projects_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:list_projects")
    with controller(request).db.session() as session:
        query = filtered(select(Project), Project, request, "name", "domain_id", "enabled")
        rows = session.scalars(query.order_by(Project.name))
        items = [views.project(p, base(request)) for p in rows]
    return listing(request, "projects", items)


@router.post("/v3/projects")
def projects_post(request: Request, body: dict = Depends(json_body),
                  creds: Credentials = Depends(caller)) -> JSONResponse:
    authorize(creds, "identity:create_project")
    data = wrapped(body, "project")
    if field(data, "is_domain", bool, default=False):
        raise BadRequest("Projects acting as domains are not supported; create a domain.")
    domain_id = field(data, "domain_id", str) or field(data, "parent_id", str) or "default"
    with controller(request).db.session() as session:
        if session.get(Domain, domain_id) is None:
            raise BadRequest(f"Domain {domain_id} does not exist (nested projects are "
                             "not supported; parent_id must be a domain).")
        name = name_of(data, "project")
        tags = tags_of(data)
        if session.scalar(select(Project.id).where(Project.name == name,
                                                   Project.domain_id == domain_id)):
            raise Conflict(f"Conflict occurred attempting to store project - it is not "
                           f"permitted to have two projects with the same name in the same "
                           f"domain : {name}.")
        project = Project(name=name, domain_id=domain_id,
                          description=field(data, "description", str, default=""),
                          enabled=field(data, "enabled", bool, default=True), tags=tags)
        session.add(project)
        session.flush()
        out = views.project(project, base(request))
    return JSONResponse({"project": out}, status_code=201)


@router.get("/v3/projects/{project_id}")
def project_get(project_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:get_project", project_id=project_id)
    with controller(request).db.session() as session:
        found = get_or_404(session, Project, project_id, "project")
        return {"project": views.project(found, base(request))}


@router.patch("/v3/projects/{project_id}")
def project_patch(project_id: str, request: Request, body: dict = Depends(json_body),
                  creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:update_project")
    data = wrapped(body, "project")
    with controller(request).db.session() as session:
        project = get_or_404(session, Project, project_id, "project")
        if "name" in data:
            project.name = name_of(data, "project")
        if "description" in data:
            project.description = field(data, "description", str, default="")
        if "enabled" in data:
            project.enabled = field(data, "enabled", bool, required=True)
        if "tags" in data:
            project.tags = tags_of(data)
        if "domain_id" in data and data["domain_id"] != project.domain_id:
            raise BadRequest("A project cannot move to another domain.")
        session.flush()
        return {"project": views.project(project, base(request))}


@router.delete("/v3/projects/{project_id}")
def project_delete(project_id: str, request: Request,
                   creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:delete_project")
    with controller(request).db.session() as session:
        project = get_or_404(session, Project, project_id, "project")
        if creds.project_id == project.id:
            raise BadRequest("A project cannot delete itself; use a token of another project.")
        session.execute(delete(Quota).where(Quota.project_id == project.id))
        session.delete(project)
    return Response(status_code=204)
