"""/v2/info/*: what this image service offers beyond plain upload."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ...core.errors import NotFound
from ...core.policy import Credentials
from ..service import caller

router = APIRouter()


@router.get("/v2/info/import")
def info_import(creds: Credentials = Depends(caller)) -> dict:
    # Interoperable image import (staging, web-download, copy-image) is not offered:
    # images take their data by upload only, so the list of methods is empty.
    return {"import-methods": {"description": "Import methods available.", "type": "array",
                               "value": []}}


@router.get("/v2/info/stores")
def info_stores(creds: Credentials = Depends(caller)) -> dict:
    # Glance's answer when it has one store, not several named backends.
    raise NotFound("Multi backend is not supported at this site.")
