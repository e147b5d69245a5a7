"""Operator page for one node: its facts and instances, disable (with a reason), enable,
drain (every instance moved off, its progress live) and restore, remove. Each action is
the cluster API's own, with the session's token; a member's forced URL or form gets its
403.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...core import cluster_map
from . import events
from .client import COMPUTE, ApiError
from .web import TEMPLATES, checked_form, current, redirect, render, require_operator

router = APIRouter(prefix="/admin")
NODES = "/cluster/v1/nodes"


def disable_body(reason: str) -> dict[str, Any]:
    if len(reason) > 255:
        raise ApiError(400, f"The reason is {len(reason)} characters long; at most 255.")
    return {"reason": reason or None}


@router.get("/nodes/{ident}")
async def node_get(ident: str, request: Request) -> Response:
    sess = current(request)
    client = await require_operator(request, sess)
    node = await client.get(f"{NODES}/{ident}")
    found = (await client.get("/compute/v2.1/servers/detail", headers=COMPUTE,
                              params={"all_tenants": "1", "host": node["name"]}))["servers"]
    servers = sorted((s for s in found if s.get("OS-EXT-SRV-ATTR:host") == node["name"]),
                     key=lambda s: s["name"])
    drain = await client.get(f"{NODES}/{ident}/drain")
    return render(request, "admin/node.html", node=node, servers=servers,
                  state=cluster_map.node_state(node), drain=drain,
                  drain_html=drain_fragment(drain))


def drain_fragment(drain: dict[str, Any]) -> str:
    return TEMPLATES.get_template("admin/node_drain.html").render(drain=drain)


@router.get("/nodes/{ident}/drain/events")
async def node_drain_events(ident: str, request: Request) -> Response:
    sess = current(request)
    client = await require_operator(request, sess)

    async def fetch() -> dict[str, str]:
        return {"html": drain_fragment(await client.get(f"{NODES}/{ident}/drain"))}

    return events.stream(request, fetch)


@router.post("/nodes/{ident}/drain")
async def node_drain(ident: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    client = await require_operator(request, sess)
    await client.post(f"{NODES}/{ident}/drain")
    return redirect(request, f"/admin/nodes/{ident}")


@router.post("/nodes/{ident}/restore")
async def node_restore(ident: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    client = await require_operator(request, sess)
    await client.post(f"{NODES}/{ident}/restore")
    return redirect(request, f"/admin/nodes/{ident}")


@router.post("/nodes/{ident}/disable")
async def node_disable(ident: str, request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    client = await require_operator(request, sess)
    await client.post(f"{NODES}/{ident}/disable", disable_body(data.get("reason")))
    return redirect(request, f"/admin/nodes/{ident}")


@router.post("/nodes/{ident}/enable")
async def node_enable(ident: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    client = await require_operator(request, sess)
    await client.post(f"{NODES}/{ident}/enable")
    return redirect(request, f"/admin/nodes/{ident}")


@router.post("/nodes/{ident}/remove")
async def node_remove(ident: str, request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    client = await require_operator(request, sess)
    force = {"force": "true"} if data.get("force") == "on" else {}
    await client.delete(f"{NODES}/{ident}", params=force)
    return redirect(request, "/admin/nodes")
