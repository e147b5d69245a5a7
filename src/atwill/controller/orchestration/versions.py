"""Version discovery: Heat's one version, v1.0, answered with 300 as Heat does."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..service import controller

router = APIRouter()


@router.get("/")
@router.get("/v1")
@router.get("/v1/")
def versions_get(request: Request) -> JSONResponse:
    href = f"{controller(request).base_url}/orchestration/v1/"
    body = {"versions": [{"id": "v1.0", "status": "CURRENT",
                          "links": [{"rel": "self", "href": href}]}]}
    return JSONResponse(body, status_code=300)
