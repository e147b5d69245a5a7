"""Identity version discovery at /identity and /identity/v3."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .common import base

router = APIRouter()
MEDIA = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]


def _v3(request: Request) -> dict:
    return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": base(request) + "/v3/"}], "media-types": MEDIA}


@router.get("/")
def versions_get(request: Request) -> JSONResponse:
    return JSONResponse({"versions": {"values": [_v3(request)]}}, status_code=300)


@router.get("/v3")
@router.get("/v3/")
def version_get(request: Request) -> dict:
    return {"version": _v3(request)}
