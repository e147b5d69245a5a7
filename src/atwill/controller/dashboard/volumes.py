"""Volumes: the list, create, show, delete (the block-storage API's own rules and messages)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from . import attachments
from .client import ApiError
from .web import api, catalog_types, checked_form, ctl_of, current, redirect, render, whole_number

router = APIRouter()
VOLUMES = "/volume/v3/volumes"
BLOCK_STORAGE = frozenset({"block-storage", "volumev3"})


def require_block_storage(request: Request) -> None:
    """A 404 that says why where the catalog has no enabled block-storage service (the
    menu then hides Volumes): a forced or bookmarked URL is not a 500 or an empty list."""
    if not BLOCK_STORAGE & catalog_types(ctl_of(request)):
        raise ApiError(404, "This cloud's catalog has no block storage service "
                            "(block-storage, volumev3): there are no volumes to show.")


def attached_to(volume: dict[str, Any]) -> str:
    """The servers a volume is attached to, as the list shows them."""
    return ", ".join(a.get("server_id", "") for a in volume.get("attachments") or [])


@router.get("/volumes")
async def volumes_get(request: Request) -> Response:
    sess = current(request)
    require_block_storage(request)
    found = (await api(request, sess).get(f"{VOLUMES}/detail"))["volumes"]
    for volume in found:
        volume["attached_to"] = attached_to(volume)
    return render(request, "volumes.html",
                  volumes=sorted(found, key=lambda v: (v["name"] or "", v["id"])))


@router.post("/volumes")
async def volumes_post(request: Request) -> Response:
    sess = current(request)
    require_block_storage(request)
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
    require_block_storage(request)
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
    require_block_storage(request)
    await checked_form(request, sess)
    await api(request, sess).delete(f"{VOLUMES}/{volume_id}")
    return redirect(request, "/volumes")
