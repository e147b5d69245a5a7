"""/flavors/{id}/os-flavor-access and the add/removeTenantAccess actions."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, Conflict, NotFound
from ...core.policy import Credentials
from ..db.compute import Flavor, FlavorAccess
from ..db.models import Project
from ..service import authorize, caller, controller, json_body
from .flavor_shape import get_flavor

router = APIRouter()
ACTIONS = {"addTenantAccess": "compute:flavor_access:add",
           "removeTenantAccess": "compute:flavor_access:remove"}


@router.get("/v2.1/flavors/{flavor_id}/os-flavor-access")
def flavor_access_get(flavor_id: str, request: Request,
                      creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "compute:flavor_access:list")
    with controller(request).db.session() as session:
        flavor = get_flavor(session, creds, flavor_id)
        if flavor.is_public:
            raise NotFound("Access list not available for public flavors.")
        return {"flavor_access": _access(flavor)}


@router.post("/v2.1/flavors/{flavor_id}/action")
def flavor_action_post(flavor_id: str, request: Request, body: dict = Depends(json_body),
                       creds: Credentials = Depends(caller)) -> dict:
    if len(body) != 1 or next(iter(body)) not in ACTIONS:
        raise BadRequest("Invalid flavor action: exactly one of addTenantAccess or "
                         "removeTenantAccess is required.")
    action, args = next(iter(body.items()))
    authorize(creds, ACTIONS[action])
    tenant = args.get("tenant") if isinstance(args, dict) else None
    if not isinstance(tenant, str) or not tenant or len(tenant) > 255:
        raise BadRequest(f"Invalid input for {action}: 'tenant' must be a project id.")
    with controller(request).db.session() as session:
        flavor = get_flavor(session, creds, flavor_id)
        _check_project(session, tenant)
        if action == "addTenantAccess":
            _add(session, flavor, tenant)
        else:
            _remove(session, flavor, tenant)
        session.flush()
        session.refresh(flavor)
        return {"flavor_access": _access(flavor)}


def _access(flavor: Flavor) -> list[dict[str, str]]:
    return [{"flavor_id": flavor.flavorid, "tenant_id": a.project_id}
            for a in sorted(flavor.projects, key=lambda a: a.project_id)]


def _check_project(session: Session, project_id: str) -> None:
    if session.get(Project, project_id) is None:
        raise BadRequest(f"Project ID {project_id} is not a valid project.")


def _add(session: Session, flavor: Flavor, project_id: str) -> None:
    if flavor.is_public:
        raise Conflict("Can not add access to a public flavor.")
    if any(a.project_id == project_id for a in flavor.projects):
        raise Conflict(f"Flavor access already exists for flavor {flavor.flavorid} and "
                       f"project {project_id} combination.")
    session.add(FlavorAccess(flavor_id=flavor.id, project_id=project_id))


def _remove(session: Session, flavor: Flavor, project_id: str) -> None:
    found = session.scalar(select(FlavorAccess).where(
        FlavorAccess.flavor_id == flavor.id, FlavorAccess.project_id == project_id))
    if found is None:
        raise NotFound(f"Flavor access not found for {flavor.flavorid} / {project_id} "
                       "combination.")
    session.delete(found)
