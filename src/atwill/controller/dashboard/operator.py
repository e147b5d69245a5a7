"""Operator pages: the overview, nodes (live), join tokens, hypervisors and aggregates.

Nothing here checks roles: the cluster and compute APIs refuse a member's token,
and the page answers with their 403.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from . import events
from .client import COMPUTE, Api
from .web import api, checked_form, current, redirect, render, require_operator

router = APIRouter(prefix="/admin")
NODES = "/cluster/v1/nodes"
TOKENS = "/cluster/v1/tokens"


def node_row(node: dict[str, Any], used: dict[str, Any] | None = None) -> dict[str, Any]:
    """A node's row; `used` is its hypervisor's detail (claimed VCPUs, RAM and disk)."""
    state = node["state"] + ("" if node["enabled"] else " (disabled)")
    used = used or {}
    resources = ", ".join(
        f"{used[key]} of {node[total]} {unit}" if key in used else f"{node[total]} {unit}"
        for key, total, unit in (("vcpus_used", "vcpus", "VCPU"),
                                 ("memory_mb_used", "memory_mb", "MiB"),
                                 ("local_gb_used", "disk_gb", "GB")))
    return {"id": node["id"], "cells": {
        "name": node["name"], "state": state, "overlay": node.get("overlay_ip") or "",
        "resources": resources, "vms": str(node["running_vms"]),
        "heartbeat": node.get("last_heartbeat") or ""}}


async def node_rows(client: Api) -> list[dict[str, Any]]:
    nodes = await client.get(NODES)
    found = (await client.get("/compute/v2.1/os-hypervisors/detail",
                              headers=COMPUTE))["hypervisors"]
    used = {h["hypervisor_hostname"]: h for h in found}
    return [node_row(n, used.get(n["name"])) for n in nodes]


def node_states(nodes: list[dict[str, Any]]) -> dict[str, int]:
    """How many nodes are in each state, a disabled one counted apart."""
    counts: dict[str, int] = {}
    for node in nodes:
        state = node["state"] if node["enabled"] else "disabled"
        counts[state] = counts.get(state, 0) + 1
    return dict(sorted(counts.items()))


@router.get("")
async def overview_get(request: Request) -> Response:
    sess = current(request)
    client = await require_operator(request, sess)
    nodes = await client.get(NODES)
    counts = {
        "Projects": len((await client.get("/identity/v3/projects"))["projects"]),
        "Users": len((await client.get("/identity/v3/users"))["users"]),
        "Flavors": len((await client.get("/compute/v2.1/flavors",
                                         params={"is_public": "None"}))["flavors"]),
        "Instances": sum(n["running_vms"] for n in nodes)}
    return render(request, "admin/overview.html", nodes=nodes, states=node_states(nodes),
                  counts=counts, vcpus=sum(n["vcpus"] for n in nodes),
                  memory=sum(n["memory_mb"] for n in nodes))


@router.get("/nodes")
async def nodes_get(request: Request) -> Response:
    sess = current(request)
    client = api(request, sess)
    rows = await node_rows(client)
    tokens = await client.get(TOKENS)
    return render(request, "admin/nodes.html", rows=rows, tokens=tokens)


@router.get("/nodes/events")
async def nodes_events(request: Request) -> Response:
    sess = current(request)
    client = api(request, sess)
    await client.get(NODES)  # a member is refused here, not after the stream started
    return events.stream(request, lambda: node_rows(client))


@router.post("/tokens")
async def tokens_post(request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    body: dict[str, Any] = {"description": data.get("description")}
    for key in ("ttl", "uses"):
        if data.get(key):
            body[key] = int(data.get(key)) if data.get(key).isdigit() else data.get(key)
    client = api(request, sess)
    created = await client.post(TOKENS, body)
    return render(request, "admin/nodes.html", rows=await node_rows(client),
                  tokens=await client.get(TOKENS), created=created)


@router.post("/tokens/{token_id}/revoke")
async def token_revoke(token_id: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    await api(request, sess).delete(f"{TOKENS}/{token_id}")
    return redirect(request, "/admin/nodes")


@router.get("/hypervisors")
async def hypervisors_get(request: Request) -> Response:
    sess = current(request)
    client = api(request, sess)
    hypervisors = (await client.get("/compute/v2.1/os-hypervisors/detail",
                                    headers=COMPUTE))["hypervisors"]
    aggregates = (await client.get("/compute/v2.1/os-aggregates",
                                   headers=COMPUTE))["aggregates"]
    return render(request, "admin/hypervisors.html", hypervisors=hypervisors,
                  aggregates=aggregates)
