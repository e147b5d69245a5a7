"""The cloud read as a profile's State: what `atwill apply` compares and `export` writes.

Each entry has the fields of the profile plus `_id` (and for some kinds more `_` fields
that the steps need); fields starting with `_` are never compared nor exported.
"""

from __future__ import annotations

from typing import Any

from ..core.profile import KINDS, State
from ..core.profile_schema import IMAGE_FIELDS, QUOTAS, rule
from . import apply_zones
from .apply_api import Api

ROUTER_PORTS = "network:router_interface"


def read(api: Api, with_quotas: bool = True) -> State:
    state: State = {kind: {} for kind in KINDS}
    projects = _identity(api, state)
    if with_quotas:
        for entry in state["projects"].values():
            entry["quotas"] = quotas(api, entry["_id"])
    _flavors(api, state)
    _images(api, state, projects)
    apply_zones.read(api, state)
    _network(api, state, projects)
    return state


def _identity(api: Api, state: State) -> dict[str, str]:
    projects = {p["id"]: p for p in api.get("identity", "/projects")["projects"]}
    names = {pid: p["name"] for pid, p in projects.items()}
    for p in projects.values():
        state["projects"][p["name"]] = {"name": p["name"], "_id": p["id"],
                                        "description": p.get("description") or "",
                                        "enabled": bool(p.get("enabled", True))}
    roles = {r["id"]: r["name"] for r in api.get("identity", "/roles")["roles"]}
    for rid, name in roles.items():
        state["roles"][name] = {"name": name, "_id": rid}
    grants: dict[str, list[dict[str, str]]] = {}
    for a in api.get("identity", "/role_assignments")["role_assignments"]:
        project = (a.get("scope") or {}).get("project", {}).get("id")
        user = (a.get("user") or {}).get("id")
        if project in names and user and a["role"]["id"] in roles:
            grants.setdefault(user, []).append({"project": names[project],
                                                "role": roles[a["role"]["id"]]})
    for u in api.get("identity", "/users")["users"]:
        entry = {"name": u["name"], "_id": u["id"], "enabled": bool(u.get("enabled", True)),
                 "default_project": names.get(u.get("default_project_id") or ""),
                 "roles": sorted(grants.get(u["id"], []),
                                 key=lambda g: (g["project"], g["role"]))}
        for key in ("email", "description"):
            if u.get(key) is not None:
                entry[key] = u[key]
        state["users"][u["name"]] = entry
    return names


def quotas(api: Api, project_id: str) -> dict[str, int]:
    sets = {"compute": (api.get("compute", f"/os-quota-sets/{project_id}") or {}).get(
        "quota_set", {}),
            "network": (api.get("network", f"/quotas/{project_id}") or {}).get("quota", {})}
    if api.has("block-storage"):
        sets["volume"] = (api.get("block-storage", f"/os-quota-sets/{project_id}") or {}).get(
            "quota_set", {})
    return {name: sets[service][key] for name, (service, key) in QUOTAS.items()
            if key in sets.get(service, {})}


def _flavors(api: Api, state: State) -> None:
    for f in api.get("compute", "/flavors/detail", params={"is_public": "None"})["flavors"]:
        state["flavors"][f["name"]] = {
            "name": f["name"], "_id": f["id"], "vcpus": f["vcpus"], "ram": f["ram"],
            "disk": f["disk"], "ephemeral": f.get("OS-FLV-EXT-DATA:ephemeral", 0),
            "swap": f.get("swap") or 0, "is_public": f.get("os-flavor-access:is_public", True),
            "description": f.get("description"), "extra_specs": dict(f.get("extra_specs")
                                                                       or {})}




def _images(api: Api, state: State, projects: dict[str, str]) -> None:
    path: str | None = "/images?limit=500"
    while path:
        page = api.get("image", path)
        for i in page["images"]:
            state["images"].setdefault(i["name"] or i["id"], {
                "name": i["name"] or i["id"], "_id": i["id"],
                "disk_format": i.get("disk_format"),
                "container_format": i.get("container_format"),
                "visibility": i.get("visibility"), "min_disk": i.get("min_disk") or 0,
                "min_ram": i.get("min_ram") or 0, "protected": bool(i.get("protected")),
                "properties": {k: str(v) for k, v in i.items() if k not in IMAGE_FIELDS
                               and not k.startswith("os_glance")}})
        path = page.get("next", "").removeprefix("/v2") or None


def _network(api: Api, state: State, projects: dict[str, str]) -> None:
    def key(item: dict[str, Any]) -> str | None:
        owner = projects.get(item.get("project_id") or item.get("tenant_id") or "")
        return f"{owner}/{item['name']}" if owner and item.get("name") else None

    nets = api.get("network", "/networks")["networks"]
    net_names = {n["id"]: n["name"] for n in nets}
    for n in nets:
        if key(n):
            state["networks"][key(n)] = {
                "name": n["name"], "_id": n["id"], "project": key(n).split("/")[0],
                "shared": bool(n.get("shared")), "external": bool(n.get("router:external")),
                "description": n.get("description") or ""}
    subnet_names = {}
    for s in api.get("network", "/subnets")["subnets"]:
        subnet_names[s["id"]] = s["name"]
        if key(s) and s["network_id"] in net_names:
            state["subnets"][key(s)] = {
                "name": s["name"], "_id": s["id"], "project": key(s).split("/")[0],
                "network": net_names[s["network_id"]], "cidr": s["cidr"],
                "ip_version": s["ip_version"], "gateway_ip": s.get("gateway_ip"),
                "enable_dhcp": bool(s.get("enable_dhcp")),
                "dns_nameservers": list(s.get("dns_nameservers") or []),
                "allocation_pools": list(s.get("allocation_pools") or []),
                "description": s.get("description") or ""}
    _routers(api, state, key, net_names, subnet_names)
    _groups(api, state, key)


def _routers(api: Api, state: State, key: Any, nets: dict[str, str],
             subnets: dict[str, str]) -> None:
    ports = api.get("network", "/ports", params={"device_owner": ROUTER_PORTS})["ports"]
    for r in api.get("network", "/routers")["routers"]:
        if not key(r):
            continue
        gateway = (r.get("external_gateway_info") or {}).get("network_id")
        inside = sorted(subnets.get(ip["subnet_id"], ip["subnet_id"]) for p in ports
                        if p.get("device_id") == r["id"] for ip in p.get("fixed_ips") or [])
        if "" in inside or (gateway and not nets.get(gateway)):
            continue  # on an unnamed subnet or network: a profile names what it links
        state["routers"][key(r)] = {
            "name": r["name"], "_id": r["id"], "project": key(r).split("/")[0],
            "external_gateway": nets.get(gateway) if gateway else None,
            "interfaces": inside, "description": r.get("description") or ""}


def _groups(api: Api, state: State, key: Any) -> None:
    groups = api.get("network", "/security-groups")["security_groups"]
    names = {g["id"]: g["name"] for g in groups}
    for g in groups:
        if not key(g):
            continue
        rules = []
        for r in g.get("security_group_rules") or []:
            shown = {f: r.get(f) for f in ("direction", "ethertype", "protocol",
                                           "port_range_min", "port_range_max",
                                           "remote_ip_prefix")}
            if r.get("remote_group_id"):
                shown["remote_group"] = names.get(r["remote_group_id"], r["remote_group_id"])
            rules.append({**rule(shown), "_id": r["id"]})
        state["security_groups"][key(g)] = {
            "name": g["name"], "_id": g["id"], "project": key(g).split("/")[0],
            "description": g.get("description") or "",
            "rules": sorted(rules, key=lambda r: repr({k: v for k, v in r.items()
                                                         if k != "_id"}))}
