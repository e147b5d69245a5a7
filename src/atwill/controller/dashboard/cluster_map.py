"""Operator page: the cluster map — nodes around the controller, their overlay links, the
instances on each node, and a log of changes (a node going down, fenced, its VMs moving)
pushed live over server-sent events as rendered HTML.

It reads the cluster and compute APIs with the session's token: a member gets their 403.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...core import cluster_map
from . import events
from .client import COMPUTE, Api
from .web import TEMPLATES, base, ctl_of, current, render, require_operator

router = APIRouter(prefix="/admin")
NODES = "/cluster/v1/nodes"
SERVERS = "/compute/v2.1/servers/detail"
SHOWN = 8  # instance names listed per node; the rest are counted


def view(nodes: list[dict[str, Any]], servers: list[dict[str, Any]],
         overlay: str) -> dict[str, Any]:
    """What the map's template draws."""
    places = cluster_map.layout([n["id"] for n in nodes])
    on: dict[str, list[str]] = {}
    for server in sorted(servers, key=lambda s: s["name"]):
        on.setdefault(server.get("host") or "", []).append(server["name"])
    drawn = [{"id": n["id"], "name": n["name"], "state": cluster_map.node_state(n),
              "overlay": n.get("overlay_ip") or "", "xy": places[n["id"]],
              "instances": on.get(n["name"], [])} for n in nodes]
    lines = [{"a": places[link.a], "b": places[link.b], "up": link.up,
              "ids": f"{link.a} {link.b}"} for link in cluster_map.links(nodes, overlay)]
    return {"nodes": drawn, "links": lines, "centre": places[cluster_map.CONTROLLER],
            "overlay": overlay, "unplaced": len(on.get("", [])), "shown": SHOWN,
            "width": cluster_map.WIDTH, "height": cluster_map.HEIGHT}


async def read(client: Api) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    nodes = await client.get(NODES)
    found = (await client.get(SERVERS, params={"all_tenants": "1"}, headers=COMPUTE))
    servers = [{"id": s["id"], "name": s["name"], "host": s.get("OS-EXT-SRV-ATTR:host")}
               for s in found["servers"]]
    return nodes, servers


def fragment(request: Request, data: dict[str, Any], log: list[str]) -> str:
    return TEMPLATES.get_template("admin/map_view.html").render(
        base=base(request), map=data, log=log)


@router.get("/map")
async def map_get(request: Request) -> Response:
    sess = current(request)
    client = await require_operator(request, sess)
    nodes, servers = await read(client)
    data = view(nodes, servers, ctl_of(request).settings.overlay)
    return render(request, "admin/map.html", html=fragment(request, data, []))


@router.get("/map/events")
async def map_events(request: Request) -> Response:
    sess = current(request)
    client = await require_operator(request, sess)
    overlay = ctl_of(request).settings.overlay
    last: list[dict[str, Any] | None] = [None]
    log: deque[str] = deque(maxlen=20)

    async def fetch() -> dict[str, str]:
        nodes, servers = await read(client)
        now = cluster_map.snapshot(nodes, servers)
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        for line in cluster_map.changes(last[0], now):
            log.appendleft(f"{stamp} {line}")
        last[0] = now
        return {"html": fragment(request, view(nodes, servers, overlay), list(log))}

    return events.stream(request, fetch)
