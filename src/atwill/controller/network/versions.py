"""Version discovery: GET /network/ lists v2.0; GET /network/v2.0 lists its resources."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..service import controller

router = APIRouter()
COLLECTIONS = ("networks", "subnets", "ports", "routers", "floatingips", "security-groups",
               "security-group-rules", "quotas", "extensions", "agents")


def _version(request: Request) -> dict:
    href = f"{controller(request).base_url}/network/v2.0/"
    return {"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": href}]}


@router.get("/")
def versions_get(request: Request) -> dict:
    return {"versions": [_version(request)]}


@router.get("/v2.0")
@router.get("/v2.0/")
def resources_get(request: Request) -> dict:
    base = f"{controller(request).base_url}/network/v2.0"
    return {"resources": [{"name": c.rstrip("s").replace("-", "_"), "collection": c,
                           "links": [{"rel": "self", "href": f"{base}/{c}"}]}
                          for c in COLLECTIONS]}
