"""The project overview: what the project uses of its quotas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .client import ApiError
from .web import api, current, render

router = APIRouter()
COMPUTE = (("Instances", "totalInstancesUsed", "maxTotalInstances"),
           ("VCPUs", "totalCoresUsed", "maxTotalCores"),
           ("RAM (MiB)", "totalRAMUsed", "maxTotalRAMSize"))
NETWORK = (("Networks", "network"), ("Subnets", "subnet"), ("Ports", "port"),
           ("Routers", "router"), ("Floating IPs", "floatingip"),
           ("Security groups", "security_group"))


def bar(label: str, used: int, limit: int) -> dict[str, Any]:
    """One usage bar; an unlimited quota (-1) shows as used of no maximum."""
    percent = 0 if limit <= 0 else min(100, round(100 * used / limit))
    return {"label": label, "used": used, "limit": limit, "percent": percent,
            "unlimited": limit < 0}


@router.get("/")
async def overview(request: Request) -> Response:
    sess = current(request)
    client = api(request, sess)
    absolute = (await client.get("/compute/v2.1/limits"))["limits"]["absolute"]
    bars = [bar(label, absolute[used], absolute[limit]) for label, used, limit in COMPUTE]
    try:
        details = (await client.get(
            f"/network/v2.0/quotas/{sess.project_id}/details.json"))["quota"]
        bars += [bar(label, details[key]["used"], details[key]["limit"])
                 for label, key in NETWORK if key in details]
    except ApiError:
        pass  # a reader may not see network quota details; compute's still show
    return render(request, "overview.html", bars=bars)
