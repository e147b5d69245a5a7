"""Quotas: a project's limits and usage for every service (tenant), and setting them (operator).

Reading goes through each service's quota API with the session's token; an operator's
change is one PUT per service, sent only once every field of that service's form is a
valid limit, so a bad field changes nothing. The APIs' policy decides who may do what.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .client import COMPUTE, Api, ApiError
from .web import Form, api, checked_form, current, redirect, render, require_operator

router = APIRouter()
LABELS = {"instances": "Instances", "cores": "VCPUs", "ram": "RAM (MiB)",
          "key_pairs": "Key pairs", "metadata_items": "Metadata items",
          "server_groups": "Server groups", "server_group_members": "Server group members",
          "network": "Networks", "subnet": "Subnets", "port": "Ports", "router": "Routers",
          "floatingip": "Floating IPs", "security_group": "Security groups",
          "security_group_rule": "Security group rules", "volumes": "Volumes",
          "snapshots": "Volume snapshots", "gigabytes": "Volume storage (GB)",
          "backups": "Backups", "backup_gigabytes": "Backup storage (GB)",
          "per_volume_gigabytes": "Largest volume (GB)", "groups": "Volume groups"}
MAX_LIMIT = 2**31 - 1
WHOLE = re.compile(r"-?[0-9]{1,10}")


@dataclass(frozen=True)
class Service:
    name: str
    title: str
    detail: str  # the GET with usage; {p} is the project id
    update: str  # the PUT
    envelope: str
    used_key: str
    headers: dict[str, str]


SERVICES = (
    Service("compute", "Compute", "/compute/v2.1/os-quota-sets/{p}/detail",
            "/compute/v2.1/os-quota-sets/{p}", "quota_set", "in_use", COMPUTE),
    Service("network", "Network", "/network/v2.0/quotas/{p}/details.json",
            "/network/v2.0/quotas/{p}", "quota", "used", {}),
    Service("volume", "Block storage", "/volume/v3/os-quota-sets/{p}?usage=True",
            "/volume/v3/os-quota-sets/{p}", "quota_set", "in_use", {}),
)


def label(resource: str) -> str:
    """A resource's name for people; Cinder's per-type keys are `volumes_TYPE` and so on."""
    for kind in ("volumes", "gigabytes", "snapshots"):
        if resource.startswith(kind + "_") and resource not in LABELS:
            return f"{LABELS[kind]}, type {resource[len(kind) + 1:]}"
    return LABELS.get(resource, resource.replace("_", " "))


def quota_rows(detail: dict[str, Any], used_key: str) -> list[dict[str, Any]]:
    """A service's usage answer as rows of resource, label, used and limit (-1: none)."""
    rows = [{"resource": name, "label": label(name), "used": value.get(used_key, 0),
             "limit": value.get("limit", -1)}
            for name, value in detail.items() if isinstance(value, dict)]
    return sorted(rows, key=lambda r: (r["resource"] not in LABELS, r["label"]))


def limits_from(data: Form, known: list[str]) -> dict[str, int]:
    """The form's limits for the service's resources: all valid, or a 400 naming the first."""
    wanted: dict[str, int] = {}
    for name in known:
        if name not in data.fields:
            continue
        text = data.get(name)
        value = int(text) if WHOLE.fullmatch(text) else -2
        if not -1 <= value <= MAX_LIMIT:
            raise ApiError(400, f"{label(name)}: the limit must be a whole number from -1 "
                                f"(unlimited) to {MAX_LIMIT}, not {text[:40]!r}.")
        wanted[name] = value
    if not wanted:
        raise ApiError(400, "The form named no limit to change.")
    return wanted


async def usage(client: Api, project_id: str) -> list[dict[str, Any]]:
    """Every service's rows; a service this cloud or this user cannot read is left out."""
    sections = []
    for service in SERVICES:
        try:
            body = await client.get(service.detail.format(p=project_id),
                                    headers=service.headers)
        except ApiError as error:
            if error.status in (401, 400):
                raise
            continue
        rows = quota_rows(body[service.envelope], service.used_key)
        sections.append({"service": service.name, "title": service.title, "rows": rows})
    return sections


@router.get("/quotas")
async def quotas_get(request: Request) -> Response:
    sess = current(request)
    sections = await usage(api(request, sess), sess.project_id or "")
    return render(request, "quotas.html", sections=sections)


@router.get("/admin/quotas")
async def admin_quotas_get(request: Request) -> Response:
    sess = current(request)
    client = await require_operator(request, sess)
    projects = sorted((await client.get("/identity/v3/projects"))["projects"],
                      key=lambda p: p["name"])
    chosen = request.query_params.get("project") or sess.project_id or ""
    project = next((p for p in projects if p["id"] == chosen), None)
    if project is None:
        raise ApiError(404, f"Project {chosen[:64]!r} could not be found.")
    return render(request, "admin/quotas.html", projects=projects, project=project,
                  sections=await usage(client, project["id"]))


@router.post("/admin/quotas/{project_id}/{service_name}")
async def admin_quotas_post(project_id: str, service_name: str, request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    client = await require_operator(request, sess)
    service = next((s for s in SERVICES if s.name == service_name), None)
    if service is None:
        raise ApiError(404, f"No quotas of a service called {service_name[:40]!r}.")
    current_set = await client.get(service.detail.format(p=project_id),
                                   headers=service.headers)
    known = [k for k, v in current_set[service.envelope].items() if isinstance(v, dict)]
    await client.put(service.update.format(p=project_id),
                     {service.envelope: limits_from(data, known)}, headers=service.headers)
    return redirect(request, f"/admin/quotas?project={project_id}")
