"""/v3/roles and role inference (implied roles)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from ...core.errors import BadRequest, Conflict, Forbidden, NotFound
from ...core.policy import Credentials
from ..db.models import ImpliedRole, Role
from ..service import authorize, caller, controller, field, json_body, wrapped
from . import views
from .common import base, filtered, get_or_404, listing, name_of

router = APIRouter()
BUILTIN = ("admin", "member", "reader")


@router.get("/v3/roles")
def roles_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:list_roles")
    with controller(request).db.session() as session:
        query = filtered(select(Role), Role, request, "name")
        items = [views.role(r, base(request)) for r in session.scalars(query.order_by(Role.name))]
    return listing(request, "roles", items)


@router.post("/v3/roles")
def roles_post(request: Request, body: dict = Depends(json_body),
               creds: Credentials = Depends(caller)) -> JSONResponse:
    authorize(creds, "identity:create_role")
    data = wrapped(body, "role")
    if field(data, "domain_id", str):
        raise BadRequest("Domain-specific roles are not supported.")
    with controller(request).db.session() as session:
        name = name_of(data, "role")
        if session.scalar(select(Role.id).where(Role.name == name)):
            raise Conflict(f"Conflict occurred attempting to store role - Duplicate entry "
                           f"found with name {name}.")
        role = Role(name=name, description=field(data, "description", str))
        session.add(role)
        session.flush()
        out = views.role(role, base(request))
    return JSONResponse({"role": out}, status_code=201)


@router.get("/v3/roles/{role_id}")
def role_get(role_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:get_role")
    with controller(request).db.session() as session:
        return {"role": views.role(get_or_404(session, Role, role_id, "role"), base(request))}


@router.patch("/v3/roles/{role_id}")
def role_patch(role_id: str, request: Request, body: dict = Depends(json_body),
               creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:update_role")
    data = wrapped(body, "role")
    with controller(request).db.session() as session:
        role = get_or_404(session, Role, role_id, "role")
        if "name" in data and data["name"] != role.name:
            if role.name in BUILTIN:
                raise Forbidden(f"The built-in role {role.name} cannot be renamed.")
            role.name = name_of(data, "role")
        if "description" in data:
            role.description = field(data, "description", str)
        session.flush()
        return {"role": views.role(role, base(request))}


@router.delete("/v3/roles/{role_id}")
def role_delete(role_id: str, request: Request,
                creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:delete_role")
    with controller(request).db.session() as session:
        role = get_or_404(session, Role, role_id, "role")
        if role.name in BUILTIN:
            raise Forbidden(f"The built-in role {role.name} cannot be deleted.")
        session.delete(role)
    return Response(status_code=204)


def _inference(request: Request, prior: Role, implied: Role) -> dict:
    brief = lambda r: {"id": r.id, "name": r.name,  # noqa: E731
                       "links": {"self": f"{base(request)}/v3/roles/{r.id}"}}
    return {"prior_role": brief(prior), "implies": brief(implied)}


@router.put("/v3/roles/{prior_id}/implies/{implied_id}")
def implied_put(prior_id: str, implied_id: str, request: Request,
                creds: Credentials = Depends(caller)) -> JSONResponse:
    authorize(creds, "identity:create_implied_role")
    with controller(request).db.session() as session:
        prior = get_or_404(session, Role, prior_id, "role")
        implied = get_or_404(session, Role, implied_id, "role")
        if prior.id == implied.id:
            raise BadRequest("A role cannot imply itself.")
        if implied.name == "admin":
            raise Forbidden("The admin role cannot be implied by another role.")
        if session.get(ImpliedRole, (prior.id, implied.id)) is None:
            session.add(ImpliedRole(prior_role_id=prior.id, implied_role_id=implied.id))
        out = _inference(request, prior, implied)
    return JSONResponse({"role_inference": out}, status_code=201)


@router.get("/v3/roles/{prior_id}/implies/{implied_id}")
def implied_get(prior_id: str, implied_id: str, request: Request,
                creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:list_implied_roles")
    with controller(request).db.session() as session:
        if session.get(ImpliedRole, (prior_id, implied_id)) is None:
            raise NotFound(f"{prior_id} does not imply {implied_id}.")
        prior, implied = session.get(Role, prior_id), session.get(Role, implied_id)
        return {"role_inference": _inference(request, prior, implied)}


@router.delete("/v3/roles/{prior_id}/implies/{implied_id}")
def implied_delete(prior_id: str, implied_id: str, request: Request,
                   creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:delete_implied_role")
    with controller(request).db.session() as session:
        rule = session.get(ImpliedRole, (prior_id, implied_id))
        if rule is None:
            raise NotFound(f"{prior_id} does not imply {implied_id}.")
        session.delete(rule)
    return Response(status_code=204)


@router.get("/v3/role_inferences")
def inferences_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:list_implied_roles")
    with controller(request).db.session() as session:
        roles = {r.id: r for r in session.scalars(select(Role))}
        by_prior: dict[str, list[Role]] = {}
        for rule in session.scalars(select(ImpliedRole)):
            by_prior.setdefault(rule.prior_role_id, []).append(roles[rule.implied_role_id])
    out = []
    for prior_id, implied in by_prior.items():
        first = _inference(request, roles[prior_id], implied[0])
        out.append({"prior_role": first["prior_role"],
                    "implies": [_inference(request, roles[prior_id], r)["implies"]
                                for r in implied]})
    return {"role_inferences": out, "links": {"self": str(request.url)}}
