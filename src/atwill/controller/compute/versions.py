"""Compute version discovery at /compute/, /compute/v2 and /compute/v2.1 (no token needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ...core.microversion import MAX, MIN
from .common import base

router = APIRouter()


def _media(version: str) -> list[dict[str, str]]:
    return [{"base": "application/json",
             "type": f"application/vnd.openstack.compute+json;version={version}"}]


def _v20(request: Request) -> dict[str, Any]:
    # Nova still lists the legacy v2.0 API (no microversions) as SUPPORTED.
    return {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
            "updated": "2011-01-21T11:33:21Z",
            "links": [{"rel": "self", "href": base(request) + "/v2/"}]}


def _v21(request: Request) -> dict[str, Any]:
    return {"id": "v2.1", "status": "CURRENT", "version": str(MAX), "min_version": str(MIN),
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": base(request) + "/v2.1/"}]}


def _detailed(entry: dict[str, Any], number: str) -> dict[str, Any]:
    """One version's own document: Nova adds describedby and media-types there only."""
    return {**entry, "links": [*entry["links"], {"rel": "describedby", "type": "text/html",
                                                 "href": "https://docs.openstack.org/"}],
            "media-types": _media(number)}


@router.get("/")
def versions_get(request: Request) -> dict:
    # Nova sorts by id: v2.0 first, then the current v2.1.
    return {"versions": [_v20(request), _v21(request)]}


@router.get("/v2")
@router.get("/v2/")
def version_v20_get(request: Request) -> dict:
    return {"version": _detailed(_v20(request), "2")}


@router.get("/v2.1")
@router.get("/v2.1/")
def version_get(request: Request) -> dict:
    return {"version": _detailed(_v21(request), "2.1")}
