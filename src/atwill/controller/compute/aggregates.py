"""/os-aggregates, read-only and empty: `openstack hypervisor show` lists them."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ...core.policy import Credentials
from ..service import authorize, caller

router = APIRouter()


@router.get("/v2.1/os-aggregates")
def aggregates_get(creds: Credentials = Depends(caller)) -> dict:
    # Host aggregates are not modelled yet; the hypervisor listing's policy guards this too.
    authorize(creds, "compute:hypervisors:list")
    return {"aggregates": []}
