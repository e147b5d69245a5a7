"""/v3/regions, /v3/services and /v3/endpoints: the service catalog."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from ...core.errors import BadRequest, Conflict
from ...core.policy import Credentials
from ...core.text import shown
from ..db.models import Endpoint, Region, Service
from ..service import authorize, caller, controller, field, json_body, wrapped
from . import views
from .common import base, filtered, get_or_404, listing

router = APIRouter()
INTERFACES = ("public", "internal", "admin")


@router.get("/v3/regions")
def regions_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:list_regions")
    with controller(request).db.session() as session:
        query = filtered(select(Region), Region, request, "parent_region_id")
        items = [views.region(r, base(request)) for r in session.scalars(query.order_by(Region.id))]
    return listing(request, "regions", items)


@router.post("/v3/regions")
def regions_post(request: Request, body: dict = Depends(json_body),
                 creds: Credentials = Depends(caller)) -> JSONResponse:
    authorize(creds, "identity:create_region")
    data = wrapped(body, "region")
    with controller(request).db.session() as session:
        region_id = field(data, "id", str) or field(data, "description", str) or None
        if not region_id:
            raise BadRequest("Invalid input: 'region.id' is required.")
        if session.get(Region, region_id) is not None:
            raise Conflict(f"Duplicate ID, {region_id}.")
        parent = field(data, "parent_region_id", str)
        if parent:
            get_or_404(session, Region, parent, "region")
        region = Region(id=region_id, description=field(data, "description", str, default=""),
                        parent_region_id=parent)
        session.add(region)
        session.flush()
        out = views.region(region, base(request))
    return JSONResponse({"region": out}, status_code=201)


@router.get("/v3/regions/{region_id}")
def region_get(region_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:get_region")
    with controller(request).db.session() as session:
        found = get_or_404(session, Region, region_id, "region")
        return {"region": views.region(found, base(request))}


@router.patch("/v3/regions/{region_id}")
def region_patch(region_id: str, request: Request, body: dict = Depends(json_body),
                 creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:update_region")
    data = wrapped(body, "region")
    with controller(request).db.session() as session:
        region = get_or_404(session, Region, region_id, "region")
        if "description" in data:
            region.description = field(data, "description", str, default="")
        return {"region": views.region(region, base(request))}


@router.delete("/v3/regions/{region_id}")
def region_delete(region_id: str, request: Request,
                  creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:delete_region")
    with controller(request).db.session() as session:
        region = get_or_404(session, Region, region_id, "region")
        if session.scalar(select(Endpoint.id).where(Endpoint.region_id == region.id).limit(1)):
            raise Conflict(f"Region {region.id} still has endpoints.")
        session.delete(region)
    return Response(status_code=204)


@router.get("/v3/services")
def services_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:list_services")
    with controller(request).db.session() as session:
        query = filtered(select(Service), Service, request, "type", "name")
        rows = session.scalars(query.order_by(Service.type))
        items = [views.service(s, base(request)) for s in rows]
    return listing(request, "services", items)


@router.post("/v3/services")
def services_post(request: Request, body: dict = Depends(json_body),
                  creds: Credentials = Depends(caller)) -> JSONResponse:
    authorize(creds, "identity:create_service")
    data = wrapped(body, "service")
    service = Service(type=field(data, "type", str, required=True, where="service"),
                      name=field(data, "name", str, default=""),
                      description=field(data, "description", str, default=""),
                      enabled=field(data, "enabled", bool, default=True))
    with controller(request).db.session() as session:
        session.add(service)
        session.flush()
        out = views.service(service, base(request))
    return JSONResponse({"service": out}, status_code=201)


@router.get("/v3/services/{service_id}")
def service_get(service_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:get_service")
    with controller(request).db.session() as session:
        found = get_or_404(session, Service, service_id, "service")
        return {"service": views.service(found, base(request))}


@router.patch("/v3/services/{service_id}")
def service_patch(service_id: str, request: Request, body: dict = Depends(json_body),
                  creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:update_service")
    data = wrapped(body, "service")
    with controller(request).db.session() as session:
        service = get_or_404(session, Service, service_id, "service")
        for key, kind in (("type", str), ("name", str), ("description", str),
                          ("enabled", bool)):
            if key in data:
                setattr(service, key, field(data, key, kind, required=True))
        return {"service": views.service(service, base(request))}


@router.delete("/v3/services/{service_id}")
def service_delete(service_id: str, request: Request,
                   creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:delete_service")
    with controller(request).db.session() as session:
        session.delete(get_or_404(session, Service, service_id, "service"))
    return Response(status_code=204)


@router.get("/v3/endpoints")
def endpoints_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:list_endpoints")
    with controller(request).db.session() as session:
        query = filtered(select(Endpoint), Endpoint, request, "service_id", "interface")
        if request.query_params.get("region_id"):
            query = query.where(Endpoint.region_id == request.query_params["region_id"])
        rows = session.scalars(query.order_by(Endpoint.url))
        items = [views.endpoint(e, base(request)) for e in rows]
    return listing(request, "endpoints", items)


def _endpoint_fields(session: Any, data: dict[str, Any], partial: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not partial or "interface" in data:
        interface = field(data, "interface", str, required=True, where="endpoint")
        if interface not in INTERFACES:
            raise BadRequest(f"Invalid interface {interface!r}; one of {', '.join(INTERFACES)}.")
        out["interface"] = interface
    if not partial or "url" in data:
        url = field(data, "url", str, required=True, where="endpoint")
        if not url.startswith(("http://", "https://")):
            raise BadRequest(f"Invalid endpoint URL {url!r}.")
        out["url"] = url
    if not partial or "service_id" in data:
        out["service_id"] = field(data, "service_id", str, required=True, where="endpoint")
        get_or_404(session, Service, out["service_id"], "service")
    region = data.get("region_id") or data.get("region")
    if region is not None or not partial:
        if not isinstance(region, str) or not region.strip() or len(region) > 255:
            raise BadRequest(f"Invalid region {shown(region)}.")
        if session.get(Region, region) is None:
            # As Keystone does: an endpoint naming a region it lacks creates the region.
            session.add(Region(id=region, description=""))
            session.flush()
        out["region_id"] = region
    if "enabled" in data:
        out["enabled"] = field(data, "enabled", bool, required=True)
    return out


@router.post("/v3/endpoints")
def endpoints_post(request: Request, body: dict = Depends(json_body),
                   creds: Credentials = Depends(caller)) -> JSONResponse:
    authorize(creds, "identity:create_endpoint")
    data = wrapped(body, "endpoint")
    with controller(request).db.session() as session:
        endpoint = Endpoint(**_endpoint_fields(session, data, partial=False))
        session.add(endpoint)
        session.flush()
        out = views.endpoint(endpoint, base(request))
    return JSONResponse({"endpoint": out}, status_code=201)


@router.get("/v3/endpoints/{endpoint_id}")
def endpoint_get(endpoint_id: str, request: Request,
                 creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:get_endpoint")
    with controller(request).db.session() as session:
        found = get_or_404(session, Endpoint, endpoint_id, "endpoint")
        return {"endpoint": views.endpoint(found, base(request))}


@router.patch("/v3/endpoints/{endpoint_id}")
def endpoint_patch(endpoint_id: str, request: Request, body: dict = Depends(json_body),
                   creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "identity:update_endpoint")
    data = wrapped(body, "endpoint")
    with controller(request).db.session() as session:
        endpoint = get_or_404(session, Endpoint, endpoint_id, "endpoint")
        for key, value in _endpoint_fields(session, data, partial=True).items():
            setattr(endpoint, key, value)
        return {"endpoint": views.endpoint(endpoint, base(request))}


@router.delete("/v3/endpoints/{endpoint_id}")
def endpoint_delete(endpoint_id: str, request: Request,
                    creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "identity:delete_endpoint")
    with controller(request).db.session() as session:
        session.delete(get_or_404(session, Endpoint, endpoint_id, "endpoint"))
    return Response(status_code=204)
