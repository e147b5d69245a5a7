"""Version discovery: GET /volume/ and GET /volume/v3 (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...core import volume_microversion
from .common import base

router = APIRouter()
UPDATED = "2023-08-31T00:00:00Z"


def _v3(request: Request) -> dict:
    return {
        "id": "v3.0", "status": "CURRENT", "updated": UPDATED,
        "version": str(volume_microversion.MAX), "min_version": str(volume_microversion.MIN),
        "links": [{"rel": "describedby", "type": "text/html",
                   "href": "https://docs.openstack.org/"},
                  {"rel": "self", "href": f"{base(request)}/v3/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.volume+json;version=3"}],
    }


@router.get("/")
def versions_get(request: Request) -> JSONResponse:
    # Cinder answers the list with 300 Multiple Choices, as Tempest's schema expects.
    return JSONResponse({"versions": [_v3(request)]}, status_code=300)


@router.get("/v3")
@router.get("/v3/")
def version_get(request: Request) -> dict:
    return {"versions": [_v3(request)]}
