"""Attaching and detaching volumes, from a volume's page and from an instance's page.

Both go through Nova's os-volume_attachments with the session's token, as
`openstack server add volume` does: the compute API's policy, states and messages
(a volume in use, an instance building) are the only ones.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .client import COMPUTE, Api, ApiError
from .web import api, checked_form, current, redirect

router = APIRouter()
SERVERS = "/compute/v2.1/servers"
VOLUMES = "/volume/v3/volumes"
# Nova attaches and detaches only in these states (check_instance_state).
ATTACHABLE = frozenset({"ACTIVE", "SHUTOFF", "PAUSED"})


def choice(data: Any, name: str, what: str) -> str:
    value = data.get(name)
    if not value:
        raise ApiError(400, f"Choose {what}.")
    return value


async def attach(client: Api, server_id: str, volume_id: str) -> None:
    await client.post(f"{SERVERS}/{server_id}/os-volume_attachments",
                      {"volumeAttachment": {"volumeId": volume_id}}, headers=COMPUTE)


async def detach(client: Api, server_id: str, volume_id: str) -> None:
    await client.delete(f"{SERVERS}/{server_id}/os-volume_attachments/{volume_id}",
                        headers=COMPUTE)


async def servers_by_id(client: Api) -> dict[str, dict[str, Any]]:
    found = await client.get(f"{SERVERS}/detail", headers=COMPUTE)
    return {s["id"]: s for s in found["servers"]}


def attachable_servers(servers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((s for s in servers.values() if s["status"] in ATTACHABLE),
                  key=lambda s: (s["name"], s["id"]))


def volume_attachments(volume: dict[str, Any],
                       servers: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """A volume's attachments as its page lists them: the server's name where it is seen."""
    return [{"server_id": a.get("server_id", ""), "device": a.get("device") or "",
             "server_name": (servers.get(a.get("server_id", "")) or {}).get("name", "")}
            for a in volume.get("attachments") or []]


async def server_volumes(client: Api, server_id: str) -> dict[str, Any]:
    """An instance page's volume section: what is attached, and what could be."""
    found = await client.get(f"{SERVERS}/{server_id}/os-volume_attachments",
                             headers=COMPUTE)
    volumes = (await client.get(f"{VOLUMES}/detail"))["volumes"]
    names = {v["id"]: v["name"] or v["id"] for v in volumes}
    attached = [{"volume_id": a["volumeId"], "device": a.get("device") or "",
                 "name": names.get(a["volumeId"], a["volumeId"])}
                for a in found["volumeAttachments"]]
    free = sorted((v for v in volumes if v["status"] == "available"),
                  key=lambda v: (v["name"] or "", v["id"]))
    return {"attached": attached, "free": free}


@router.post("/volumes/{volume_id}/attach")
async def volume_attach(volume_id: str, request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    await attach(api(request, sess), choice(data, "server", "an instance"), volume_id)
    return redirect(request, f"/volumes/{volume_id}")


@router.post("/volumes/{volume_id}/detach")
async def volume_detach(volume_id: str, request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    await detach(api(request, sess), choice(data, "server", "an instance"), volume_id)
    return redirect(request, f"/volumes/{volume_id}")


@router.post("/instances/{server_id}/volumes")
async def instance_attach(server_id: str, request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    await attach(api(request, sess), server_id, choice(data, "volume", "a volume"))
    return redirect(request, f"/instances/{server_id}")


@router.post("/instances/{server_id}/volumes/{volume_id}/detach")
async def instance_detach(server_id: str, volume_id: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    await detach(api(request, sess), server_id, volume_id)
    return redirect(request, f"/instances/{server_id}")
