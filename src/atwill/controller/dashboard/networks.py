"""Networks with their subnets, routers and their interfaces, floating IPs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .client import ApiError
from .web import api, checked_form, current, redirect, render

router = APIRouter()
NET = "/network/v2.0"


@router.get("/networks")
async def networks_get(request: Request) -> Response:
    sess = current(request)
    client = api(request, sess)
    networks = (await client.get(f"{NET}/networks"))["networks"]
    subnets = {s["id"]: s for s in (await client.get(f"{NET}/subnets"))["subnets"]}
    for network in networks:
        network["subnet_rows"] = [subnets[s] for s in network["subnets"] if s in subnets]
    return render(request, "networks.html",
                  networks=sorted(networks, key=lambda n: n["name"]))


def subnet_body(network_id: str, data: Any) -> dict[str, Any]:
    subnet: dict[str, Any] = {"network_id": network_id, "ip_version": 4,
                              "cidr": data.get("cidr"), "name": data.get("subnet_name"),
                              "enable_dhcp": data.get("dhcp") == "on"}
    if data.get("gateway"):
        subnet["gateway_ip"] = data.get("gateway")
    return {"subnet": subnet}


@router.post("/networks")
async def networks_post(request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    client = api(request, sess)
    network = (await client.post(f"{NET}/networks",
                                 {"network": {"name": data.get("name")}}))["network"]
    if data.get("cidr"):
        try:
            await client.post(f"{NET}/subnets", subnet_body(network["id"], data))
        except ApiError:
            # A network made for a subnet that was refused is not what the user asked for.
            await client.delete(f"{NET}/networks/{network['id']}")
            raise
    return redirect(request, "/networks")


@router.post("/networks/{network_id}/delete")
async def network_delete(network_id: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    await api(request, sess).delete(f"{NET}/networks/{network_id}")
    return redirect(request, "/networks")


@router.get("/routers")
async def routers_get(request: Request) -> Response:
    sess = current(request)
    client = api(request, sess)
    routers = (await client.get(f"{NET}/routers"))["routers"]
    networks = (await client.get(f"{NET}/networks"))["networks"]
    subnets = (await client.get(f"{NET}/subnets"))["subnets"]
    ports = (await client.get(f"{NET}/ports",
                              params={"device_owner": "network:router_interface"}))["ports"]
    for item in routers:
        item["interfaces"] = [ip["ip_address"] for p in ports if p["device_id"] == item["id"]
                              for ip in p["fixed_ips"]]
    return render(request, "routers.html", routers=routers,
                  externals=[n for n in networks if n.get("router:external")],
                  subnets=subnets)


@router.post("/routers")
async def routers_post(request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    body: dict[str, Any] = {"name": data.get("name")}
    if data.get("external"):
        body["external_gateway_info"] = {"network_id": data.get("external")}
    await api(request, sess).post(f"{NET}/routers", {"router": body})
    return redirect(request, "/routers")


@router.post("/routers/{router_id}/interface")
async def router_interface(router_id: str, request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    verb = "remove" if data.get("remove") else "add"
    await api(request, sess).put(f"{NET}/routers/{router_id}/{verb}_router_interface",
                                 {"subnet_id": data.get("subnet")})
    return redirect(request, "/routers")


@router.post("/routers/{router_id}/delete")
async def router_delete(router_id: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    await api(request, sess).delete(f"{NET}/routers/{router_id}")
    return redirect(request, "/routers")


@router.get("/floating-ips")
async def floating_ips_get(request: Request) -> Response:
    sess = current(request)
    client = api(request, sess)
    ips = (await client.get(f"{NET}/floatingips"))["floatingips"]
    networks = (await client.get(f"{NET}/networks"))["networks"]
    return render(request, "floating_ips.html", ips=ips,
                  externals=[n for n in networks if n.get("router:external")])


@router.post("/floating-ips")
async def floating_ips_post(request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    await api(request, sess).post(f"{NET}/floatingips", {"floatingip": {
        "floating_network_id": data.get("network")}})
    return redirect(request, "/floating-ips")


@router.post("/floating-ips/{ip_id}/delete")
async def floating_ip_delete(ip_id: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    await api(request, sess).delete(f"{NET}/floatingips/{ip_id}")
    return redirect(request, "/floating-ips")
