"""Security groups with their rules, and key pairs (a generated private key shown once)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .web import api, checked_form, current, redirect, render

router = APIRouter()
NET = "/network/v2.0"
KEYPAIRS = "/compute/v2.1/os-keypairs"
# The last microversion at which Nova still generates a key pair for the caller.
KEY_VERSION = {"OpenStack-API-Version": "compute 2.91"}


@router.get("/security-groups")
async def groups_get(request: Request) -> Response:
    sess = current(request)
    groups = (await api(request, sess).get(f"{NET}/security-groups"))["security_groups"]
    return render(request, "security_groups.html",
                  groups=sorted(groups, key=lambda g: g["name"]))


@router.post("/security-groups")
async def groups_post(request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    await api(request, sess).post(f"{NET}/security-groups", {"security_group": {
        "name": data.get("name"), "description": data.get("description")}})
    return redirect(request, "/security-groups")


@router.post("/security-groups/{group_id}/delete")
async def group_delete(group_id: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    await api(request, sess).delete(f"{NET}/security-groups/{group_id}")
    return redirect(request, "/security-groups")


def rule_body(group_id: str, data: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"security_group_id": group_id,
                            "direction": data.get("direction") or "ingress",
                            "ethertype": "IPv4"}
    if data.get("protocol"):
        rule["protocol"] = data.get("protocol")
    for key in ("port_range_min", "port_range_max"):
        if data.get(key):
            rule[key] = int(data.get(key)) if data.get(key).isdigit() else data.get(key)
    if data.get("remote_ip_prefix"):
        rule["remote_ip_prefix"] = data.get("remote_ip_prefix")
    return {"security_group_rule": rule}


@router.post("/security-groups/{group_id}/rules")
async def rules_post(group_id: str, request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    await api(request, sess).post(f"{NET}/security-group-rules", rule_body(group_id, data))
    return redirect(request, "/security-groups")


@router.post("/security-group-rules/{rule_id}/delete")
async def rule_delete(rule_id: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    await api(request, sess).delete(f"{NET}/security-group-rules/{rule_id}")
    return redirect(request, "/security-groups")


@router.get("/keypairs")
async def keypairs_get(request: Request) -> Response:
    sess = current(request)
    found = (await api(request, sess).get(KEYPAIRS))["keypairs"]
    return render(request, "keypairs.html", keypairs=[k["keypair"] for k in found])


@router.post("/keypairs")
async def keypairs_post(request: Request) -> Response:
    """Create (the private key is in this one response, never stored) or import."""
    sess = current(request)
    data = await checked_form(request, sess)
    body: dict[str, Any] = {"name": data.get("name")}
    if data.get("public_key"):
        body["public_key"] = data.get("public_key")
    made = (await api(request, sess).post(KEYPAIRS, {"keypair": body},
                                          headers=KEY_VERSION))["keypair"]
    found = (await api(request, sess).get(KEYPAIRS))["keypairs"]
    return render(request, "keypairs.html", keypairs=[k["keypair"] for k in found],
                  created=made)


@router.post("/keypairs/{name}/delete")
async def keypair_delete(name: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    await api(request, sess).delete(f"{KEYPAIRS}/{quote(name, safe='')}")
    return redirect(request, "/keypairs")
