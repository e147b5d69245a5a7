"""Operator page for flavors: every flavor (public or not) with its extra specs, create, delete.

Listing flavors is anyone's read, so the page first asks the API whether the user
is a cloud admin (require_operator): a member never sees it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .client import ApiError
from .web import Form, checked_form, current, redirect, render, require_operator, whole_number

router = APIRouter(prefix="/admin")
FLAVORS = "/compute/v2.1/flavors"
# The first microversion whose flavor bodies carry their extra specs.
SPECS = {"OpenStack-API-Version": "compute 2.61"}


def flavor_body(data: Form) -> dict[str, Any]:
    if not data.get("name"):
        raise ApiError(400, "A flavor needs a name.")
    flavor: dict[str, Any] = {
        "name": data.get("name"), "vcpus": whole_number(data, "vcpus", "VCPUs", 1),
        "ram": whole_number(data, "ram", "RAM (MiB)", 1),
        "disk": whole_number(data, "disk", "Disk (GB)", 0), "id": None,
        "os-flavor-access:is_public": data.get("private") != "on"}
    return {"flavor": flavor}


@router.get("/flavors")
async def flavors_get(request: Request) -> Response:
    sess = current(request)
    client = await require_operator(request, sess)
    found = (await client.get(f"{FLAVORS}/detail", params={"is_public": "None"},
                              headers=SPECS))["flavors"]
    return render(request, "admin/flavors.html",
                  flavors=sorted(found, key=lambda f: (f["vcpus"], f["ram"], f["name"])))


@router.post("/flavors")
async def flavors_post(request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    client = await require_operator(request, sess)
    await client.post(FLAVORS, flavor_body(data), headers=SPECS)
    return redirect(request, "/admin/flavors")


@router.post("/flavors/{flavor_id}/delete")
async def flavor_delete(flavor_id: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    client = await require_operator(request, sess)
    await client.delete(f"{FLAVORS}/{flavor_id}")
    return redirect(request, "/admin/flavors")
