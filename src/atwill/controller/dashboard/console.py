"""An instance's serial console log, followed live: the page's stream sends each new tail."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from . import events
from .client import COMPUTE, Api
from .web import api, current, render

router = APIRouter()
SERVERS = "/compute/v2.1/servers"
LINES = 500


async def tail(client: Api, server_id: str) -> dict[str, Any]:
    """The console's last lines, as the page and its stream both show them."""
    found = await client.post(f"{SERVERS}/{server_id}/action",
                              {"os-getConsoleOutput": {"length": LINES}}, headers=COMPUTE)
    return {"output": found["output"]}


@router.get("/instances/{server_id}/console")
async def console_get(server_id: str, request: Request) -> Response:
    sess = current(request)
    client = api(request, sess)
    server = (await client.get(f"{SERVERS}/{server_id}", headers=COMPUTE))["server"]
    return render(request, "console.html", server=server,
                  output=(await tail(client, server_id))["output"])


@router.get("/instances/{server_id}/console/events")
async def console_events(server_id: str, request: Request) -> Response:
    sess = current(request)
    client = api(request, sess)
    await tail(client, server_id)  # another project's server is refused before the stream
    return events.stream(request, lambda: tail(client, server_id))
