"""Image API version discovery at /image/ and /image/versions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..service import controller

router = APIRouter()

# Glance lists every v2 minor version; clients pick the highest CURRENT one and
# append /v2 themselves. Listing the older ones keeps version pins working.
CURRENT = "2.17"
SUPPORTED = ("2.16", "2.15", "2.9", "2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0")


def versions(request: Request) -> list[dict]:
    href = controller(request).base_url + "/image/v2/"
    entries = [(CURRENT, "CURRENT")] + [(v, "SUPPORTED") for v in SUPPORTED]
    return [{"id": f"v{v}", "status": status, "links": [{"rel": "self", "href": href}]}
            for v, status in entries]


@router.get("/")
def versions_root(request: Request) -> JSONResponse:
    # Glance answers its root with 300 Multiple Choices; keystoneauth accepts it.
    return JSONResponse({"versions": versions(request)}, status_code=300)


@router.get("/versions")
def versions_get(request: Request) -> dict:
    return {"versions": versions(request)}
