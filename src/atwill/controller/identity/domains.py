"""/v3/domains."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from ...core.errors import Forbidden
from ...core.policy import Credentials
from ..db.models import Domain
from ..service import authorize, caller, controller, field, json_body, wrapped
from . import views
from .common import base, filtered, get_or_404, listing, name_of

router = APIRouter()


@router.get("/v3/domains")
def domains_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:list_domains")
    with controller(request).db.session() as session:
        query = filtered(select(Domain), Domain, request, "name", "enabled")
        rows = session.scalars(query.order_by(Domain.name))
        items = [views.domain(d, base(request)) for d in rows]
    return listing(request, "domains", items)


@router.post("/v3/domains")
def domains_post(request: Request, body: dict = Depends(json_body),
                 creds: Credentials = Depends(caller)) -> JSONResponse:
    authorize(creds, "identity:create_domain")
    data = wrapped(body, "domain")
    domain = Domain(name=name_of(data, "domain"),
                    description=field(data, "description", str, default=""),
                    enabled=field(data, "enabled", bool, default=True))
    with controller(request).db.session() as session:
        session.add(domain)
        session.flush()
        out = views.domain(domain, base(request))
    return JSONResponse({"domain": out}, status_code=201)


@router.get("/v3/domains/{domain_id}")
def domain_get(domain_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:get_domain", domain_id=domain_id)
    with controller(request).db.session() as session:
        found = get_or_404(session, Domain, domain_id, "domain")
        return {"domain": views.domain(found, base(request))}


@router.patch("/v3/domains/{domain_id}")
def domain_patch(domain_id: str, request: Request, body: dict = Depends(json_body),
                 creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:update_domain")
    data = wrapped(body, "domain")
    with controller(request).db.session() as session:
        domain = get_or_404(session, Domain, domain_id, "domain")
        if "name" in data:
            domain.name = name_of(data, "domain")
        if "description" in data:
            domain.description = field(data, "description", str, default="")
        if "enabled" in data:
            enabled = field(data, "enabled", bool, required=True)
            if domain.id == "default" and not enabled:
                raise Forbidden("The default domain cannot be disabled.")
            domain.enabled = enabled
        session.flush()
        return {"domain": views.domain(domain, base(request))}


@router.delete("/v3/domains/{domain_id}")
def domain_delete(domain_id: str, request: Request,
                  creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:delete_domain")
    with controller(request).db.session() as session:
        domain = get_or_404(session, Domain, domain_id, "domain")
        if domain.id == "default":
            raise Forbidden("The default domain cannot be deleted.")
        if domain.enabled:
            # Keystone answers 403 here, not 400.
            raise Forbidden("Cannot delete a domain that is enabled, please disable it "
                            "first.")
        session.delete(domain)
    return Response(status_code=204)
