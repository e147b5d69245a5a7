"""Stacks: the list, one stack with its resources and events, delete."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .client import Api, ApiError
from .sessions import Sess
from .web import api, checked_form, current, redirect, render

router = APIRouter()
HEAT = "/orchestration/v1/"


def stacks_url(sess: Sess) -> str:
    if not sess.project_id:
        raise ApiError(400, "Stacks belong to a project: switch to one first.")
    return f"{HEAT}{sess.project_id}/stacks"


@router.get("/stacks")
async def stacks_get(request: Request) -> Response:
    sess = current(request)
    found = (await api(request, sess).get(stacks_url(sess)))["stacks"]
    return render(request, "stacks.html",
                  stacks=sorted(found, key=lambda s: (s["stack_name"], s["id"])))


async def _stack(client: Api, sess: Sess, stack_id: str) -> tuple[str, dict[str, Any]]:
    """The stack's canonical path (…/stacks/NAME/ID) and body; Heat answers a bare id by 302."""
    resp = await client.call("GET", f"{stacks_url(sess)}/{quote(stack_id, safe='')}")
    location = resp.headers.get("location", "")
    if resp.status_code != 302 or HEAT not in location:
        raise ApiError(404, f"The Stack ({stack_id[:64]}) could not be found.")
    path = location[location.index(HEAT):]
    return path, (await client.get(path))["stack"]


@router.get("/stacks/{stack_id}")
async def stack_get(stack_id: str, request: Request) -> Response:
    sess = current(request)
    client = api(request, sess)
    path, stack = await _stack(client, sess, stack_id)
    resources = (await client.get(f"{path}/resources"))["resources"]
    found = (await client.get(f"{path}/events"))["events"]
    return render(request, "stack.html", stack=stack,
                  resources=sorted(resources, key=lambda r: r["resource_name"]),
                  events=sorted(found, key=lambda e: e["event_time"], reverse=True))


@router.post("/stacks/{stack_id}/delete")
async def stack_delete(stack_id: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    await api(request, sess).delete(f"{stacks_url(sess)}/{quote(stack_id, safe='')}")
    return redirect(request, "/stacks")
