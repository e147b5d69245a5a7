"""/limits: the project's absolute limits and usage in Nova's camelCase names."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ...core.microversion import Version
from ...core.policy import Credentials
from ..service import authorize, caller, controller
from .common import api_version
from .usage import project_limits, project_usage

router = APIRouter()
# (name, resource, first microversion without it); None means still present.
MAXIMA = [
    ("maxTotalInstances", "instances", None), ("maxTotalCores", "cores", None),
    ("maxTotalRAMSize", "ram", None), ("maxTotalKeypairs", "key_pairs", None),
    ("maxServerMeta", "metadata_items", None), ("maxServerGroups", "server_groups", None),
    ("maxServerGroupMembers", "server_group_members", None),
    ("maxImageMeta", "metadata_items", 39),
    ("maxPersonality", "injected_files", 57),
    ("maxPersonalitySize", "injected_file_content_bytes", 57),
    ("maxSecurityGroups", "security_groups", 36),
    ("maxSecurityGroupRules", "security_group_rules", 36),
    ("maxTotalFloatingIps", "floating_ips", 36),
]
USED = [
    ("totalInstancesUsed", "instances", None), ("totalCoresUsed", "cores", None),
    ("totalRAMUsed", "ram", None), ("totalServerGroupsUsed", "server_groups", None),
    ("totalSecurityGroupsUsed", "security_groups", 36),
    ("totalFloatingIpsUsed", "floating_ips", 36),
]


@router.get("/v2.1/limits")
def limits_get(request: Request, creds: Credentials = Depends(caller),
               version: Version = Depends(api_version)) -> dict:
    project_id = request.query_params.get("tenant_id") or creds.project_id or ""
    authorize(creds, "compute:limits", project_id=creds.project_id)
    if project_id != creds.project_id:
        authorize(creds, "compute:limits:other_project", project_id=project_id)
    with controller(request).db.session() as session:
        limits = project_limits(session, project_id)
        used = project_usage(session, project_id, None)
    absolute = {name: limits[res] for name, res, gone in MAXIMA if _shown(version, gone)}
    absolute.update({name: used[res] for name, res, gone in USED if _shown(version, gone)})
    return {"limits": {"rate": [], "absolute": absolute}}


def _shown(version: Version, gone: int | None) -> bool:
    return gone is None or version.minor < gone
