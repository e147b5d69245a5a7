"""Compute version discovery at /compute/ and /compute/v2.1 (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...core.microversion import MAX, MIN
from .common import base

router = APIRouter()
MEDIA = [{"base": "application/json",
          "type": "application/vnd.openstack.compute+json;version=2.1"}]


def _v21(request: Request) -> dict:
    return {"id": "v2.1", "status": "CURRENT", "version": str(MAX), "min_version": str(MIN),
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": base(request) + "/v2.1/"},
                      {"rel": "describedby", "type": "text/html",
                       "href": "https://docs.openstack.org/"}],
            "media-types": MEDIA}


@router.get("/")
def versions_get(request: Request) -> dict:
    return {"versions": [_v21(request)]}


@router.get("/v2.1")
@router.get("/v2.1/")
def version_get(request: Request) -> dict:
    return {"version": _v21(request)}
