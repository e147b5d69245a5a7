"""Instances: the live list, the launch dialog, actions, console log, floating IPs."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from . import attachments, events
from .client import COMPUTE, Api, ApiError
from .web import TEMPLATES, api, catalog_types, checked_form, ctl_of, current, redirect, render

router = APIRouter()
SERVERS = "/compute/v2.1/servers"
ACTIONS = {"start": {"os-start": None}, "stop": {"os-stop": None},
           "reboot": {"reboot": {"type": "SOFT"}}, "hard-reboot": {"reboot": {"type": "HARD"}}}


def row(server: dict[str, Any]) -> dict[str, Any]:
    """What the list shows of a server, as the page's script updates it too."""
    addresses = [a["addr"] for addrs in (server.get("addresses") or {}).values()
                 for a in addrs]
    return {"id": server["id"], "cells": {
        "name": server["name"], "status": server["status"],
        "task": server.get("OS-EXT-STS:task_state") or "",
        "addresses": ", ".join(addresses),
        "flavor": (server.get("flavor") or {}).get("original_name", "")}}


async def rows(client: Api) -> list[dict[str, Any]]:
    found = await client.get(f"{SERVERS}/detail", headers=COMPUTE)
    return [row(s) for s in sorted(found["servers"], key=lambda s: s["name"])]


async def launch_choices(client: Api) -> dict[str, Any]:
    images = (await client.get("/image/v2/images"))["images"]
    flavors = (await client.get("/compute/v2.1/flavors/detail"))["flavors"]
    networks = (await client.get("/network/v2.0/networks"))["networks"]
    keypairs = (await client.get("/compute/v2.1/os-keypairs"))["keypairs"]
    groups = (await client.get("/network/v2.0/security-groups"))["security_groups"]
    zones = (await client.get("/compute/v2.1/os-availability-zone"))["availabilityZoneInfo"]
    return {"images": [i for i in images if i.get("status") == "active"],
            "flavors": sorted(flavors, key=lambda f: (f["vcpus"], f["ram"])),
            "networks": [n for n in networks if not n.get("router:external")],
            "keypairs": [k["keypair"] for k in keypairs],
            "groups": groups, "zones": [z["zoneName"] for z in zones]}


@router.get("/instances")
async def instances_get(request: Request) -> Response:
    sess = current(request)
    client = api(request, sess)
    return render(request, "instances.html", rows=await rows(client),
                  choices=await launch_choices(client))


@router.get("/instances/events")
async def instances_events(request: Request) -> Response:
    sess = current(request)
    client = api(request, sess)
    return events.stream(request, lambda: rows(client))


def launch_body(data: Any) -> dict[str, Any]:
    server: dict[str, Any] = {"name": data.get("name"), "imageRef": data.get("image"),
                              "flavorRef": data.get("flavor")}
    networks = data.getlist("network")
    server["networks"] = [{"uuid": n} for n in networks] if networks else "none"
    if data.get("keypair"):
        server["key_name"] = data.get("keypair")
    groups = data.getlist("security_group")
    if groups:
        server["security_groups"] = [{"name": g} for g in groups]
    if data.get("zone"):
        server["availability_zone"] = data.get("zone")
    if data.raw("user_data"):
        # As typed (a script's final newline is part of it), but with the Unix line ends
        # that a browser's text area replaced by CRLF: "#!/bin/sh\r" runs nothing.
        text = data.raw("user_data").replace("\r\n", "\n")
        server["user_data"] = base64.b64encode(text.encode()).decode()
    return {"server": server}


@router.post("/instances")
async def instances_post(request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    await api(request, sess).post(SERVERS, launch_body(data), headers=COMPUTE)
    return redirect(request, "/instances")


@router.get("/instances/{server_id}")
async def instance_get(server_id: str, request: Request) -> Response:
    sess = current(request)
    client = api(request, sess)
    server = (await client.get(f"{SERVERS}/{server_id}", headers=COMPUTE))["server"]
    try:
        console = (await client.post(f"{SERVERS}/{server_id}/action",
                                     {"os-getConsoleOutput": {"length": 200}},
                                     headers=COMPUTE))["output"]
    except ApiError as error:
        console = f"(no console log: {error.message})"
    ips = (await client.get("/network/v2.0/floatingips"))["floatingips"]
    ports = {p["id"] for p in (await client.get("/network/v2.0/ports",
                                                 params={"device_id": server_id}))["ports"]}
    return render(request, "instance.html", server=server, row=row(server),
                  facts_html=facts_fragment(server),
                  console=console, volumes=await volume_section(request, client, server),
                  free_ips=[ip for ip in ips if not ip.get("port_id")],
                  its_ips=[ip for ip in ips if ip.get("port_id") in ports])


def facts_fragment(server: dict[str, Any]) -> str:
    """The instance's facts (status and task among them), rendered for the page and its
    live part alike."""
    return TEMPLATES.get_template("instance_facts.html").render(server=server, row=row(server))


@router.get("/instances/{server_id}/events")
async def instance_events(server_id: str, request: Request) -> Response:
    """The instance's facts pushed when they change: its status turns ACTIVE after a
    reboot, or SHUTOFF after a stop, without the page reloading."""
    sess = current(request)
    client = api(request, sess)

    async def fetch() -> dict[str, str]:
        server = (await client.get(f"{SERVERS}/{server_id}", headers=COMPUTE))["server"]
        return {"html": facts_fragment(server)}

    return events.stream(request, fetch)


async def volume_section(request: Request, client: Api,
                         server: dict[str, Any]) -> dict[str, Any] | None:
    """The instance's volumes and the project's free ones; None without block storage."""
    if not {"block-storage", "volumev3"} & catalog_types(ctl_of(request)):
        return None
    section = await attachments.server_volumes(client, server["id"])
    if server["status"] not in attachments.ATTACHABLE:
        section["free"] = []
    return section


@router.post("/instances/{server_id}/action")
async def instance_action(server_id: str, request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    client, action = api(request, sess), data.get("action")
    if action == "delete":
        await client.delete(f"{SERVERS}/{server_id}", headers=COMPUTE)
        return redirect(request, "/instances")
    if action == "snapshot":
        body: dict[str, Any] = {"createImage": {"name": data.get("snapshot_name")}}
    else:
        body = ACTIONS.get(action) or {"unknown-action": None}
    await client.post(f"{SERVERS}/{server_id}/action", body, headers=COMPUTE)
    return redirect(request, f"/instances/{server_id}")


@router.post("/instances/{server_id}/floating-ip")
async def instance_floating_ip(server_id: str, request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    client = api(request, sess)
    port_id = None
    if not data.get("disassociate"):
        ports = (await client.get("/network/v2.0/ports",
                                  params={"device_id": server_id}))["ports"]
        if not ports:
            raise ApiError(409, "The instance has no port to give a floating IP.")
        port_id = ports[0]["id"]
    await client.put(f"/network/v2.0/floatingips/{data.get('floating_ip')}",
                     {"floatingip": {"port_id": port_id}})
    return redirect(request, f"/instances/{server_id}")
