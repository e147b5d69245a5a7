"""Volumes: the list, create, show, delete (the block-storage API's own rules and messages)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from . import attachments
from .web import api, checked_form, current, redirect, render, whole_number

router = APIRouter()
VOLUMES = "/volume/v3/volumes"


def attached_to(volume: dict[str, Any]) -> str:
    """The servers a volume is attached to, as the list shows them."""
    return ", ".join(a.get("server_id", "") for a in volume.get("attachments") or [])


@router.get("/volumes")
async def volumes_get(request: Request) -> Response:
    sess = current(request)
    found = (await api(request, sess).get(f"{VOLUMES}/detail"))["volumes"]
    for volume in found:
        volume["attached_to"] = attached_to(volume)
    return render(request, "volumes.html",
                  volumes=sorted(found, key=lambda v: (v["name"] or "", v["id"])))


@router.post("/volumes")
async def volumes_post(request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    body: dict[str, Any] = {"size": whole_number(data, "size", "Size (GB)", 1),
                            "name": data.get("name") or None}
    if data.get("description"):
        body["description"] = data.get("description")
    await api(request, sess).post(VOLUMES, {"volume": body})
    return redirect(request, "/volumes")


@router.get("/volumes/{volume_id}")
async def volume_get(volume_id: str, request: Request) -> Response:
    sess = current(request)
    client = api(request, sess)
    volume = (await client.get(f"{VOLUMES}/{volume_id}"))["volume"]
    servers = await attachments.servers_by_id(client)
    return render(request, "volume.html", volume=volume,
                  attached=attachments.volume_attachments(volume, servers),
                  servers=attachments.attachable_servers(servers)
                  if volume["status"] == "available" else [])


@router.post("/volumes/{volume_id}/delete")
async def volume_delete(volume_id: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    await api(request, sess).delete(f"{VOLUMES}/{volume_id}")
    return redirect(request, "/volumes")
