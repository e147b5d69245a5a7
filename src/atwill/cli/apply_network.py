"""Networks, subnets, routers and security groups of a profile, through Neutron's API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.profile_plan import Step, plain
from ..core.profile_schema import rule

if TYPE_CHECKING:
    from .apply_steps import Executor

NET = "network"
SUBNET_FIELDS = ("gateway_ip", "enable_dhcp", "dns_nameservers", "allocation_pools",
                 "description")
TOUCH = "atwill-apply-default"


def networks(ex: Executor, step: Step) -> None:
    if step.action == "delete":
        ex.api.call("DELETE", NET, f"/networks/{step.have['_id']}")
        return
    want = step.want or {}

    def body(values: dict[str, Any]) -> dict[str, Any]:
        out = {k: values[k] for k in ("shared", "description") if k in values}
        if "external" in values:
            out["router:external"] = values["external"]
        return out

    if step.action == "create":
        made = ex.api.call("POST", NET, "/networks", {"network": {
            "name": want["name"], "project_id": ex.id_of("projects", want["project"]),
            **body(want)}})["network"]
        _made(ex, "networks", step.key, made["id"], f"/networks/{made['id']}")
        return
    nid = step.have["_id"]
    new, old = body({k: v[1] for k, v in step.changes.items()}), body(step.have)
    ex.api.call("PUT", NET, f"/networks/{nid}", {"network": new})
    ex.did(f"network {step.key}", lambda: ex.api.call(
        "PUT", NET, f"/networks/{nid}", {"network": {k: old[k] for k in new}}))


def _made(ex: Executor, kind: str, key: str, made_id: str, path: str) -> None:
    ex.did(f"{kind.rstrip('s')} {key}", lambda: ex.api.call("DELETE", NET, path))
    ex.current[kind][key] = {"_id": made_id}


def subnets(ex: Executor, step: Step) -> None:
    if step.action == "delete":
        ex.api.call("DELETE", NET, f"/subnets/{step.have['_id']}")
        return
    want = step.want or {}
    if step.action == "create":
        version = 6 if ":" in want["cidr"] else 4
        made = ex.api.call("POST", NET, "/subnets", {"subnet": {
            "name": want["name"], "project_id": ex.id_of("projects", want["project"]),
            "network_id": ex.id_of("networks", f"{want['project']}/{want['network']}"),
            "cidr": want["cidr"], "ip_version": want.get("ip_version", version),
            **{k: want[k] for k in SUBNET_FIELDS if k in want}}})["subnet"]
        _made(ex, "subnets", step.key, made["id"], f"/subnets/{made['id']}")
        return
    sid = step.have["_id"]
    new = {k: v[1] for k, v in step.changes.items() if k in SUBNET_FIELDS}
    old = {k: step.have.get(k) for k in new}
    ex.api.call("PUT", NET, f"/subnets/{sid}", {"subnet": new})
    ex.did(f"subnet {step.key}",
           lambda: ex.api.call("PUT", NET, f"/subnets/{sid}", {"subnet": old}))


def routers(ex: Executor, step: Step) -> None:
    project = (step.want or step.have or {})["project"]
    if step.action == "delete":
        rid = step.have["_id"]
        for name in step.have.get("interfaces") or []:
            ex.api.call("PUT", NET, f"/routers/{rid}/remove_router_interface",
                        {"subnet_id": ex.id_near("subnets", project, name)})
        ex.api.call("DELETE", NET, f"/routers/{rid}")
        return
    want = step.want or {}
    if step.action == "create":
        made = ex.api.call("POST", NET, "/routers", {"router": {
            "name": want["name"], "project_id": ex.id_of("projects", project),
            **({"description": want["description"]} if "description" in want else {})}})
        rid = made["router"]["id"]
        _made(ex, "routers", step.key, rid, f"/routers/{rid}")
        have: dict[str, Any] = {"external_gateway": None, "interfaces": []}
    else:
        rid, have = step.have["_id"], plain(step.have)
    if "external_gateway" in want and want["external_gateway"] != have["external_gateway"]:
        _gateway(ex, step.key, rid, project, have["external_gateway"], want["external_gateway"])
    if "description" in step.changes:
        old_text = have.get("description", "")
        ex.api.call("PUT", NET, f"/routers/{rid}", {"router": {
            "description": want["description"]}})
        ex.did(f"router {step.key}", lambda: ex.api.call(
            "PUT", NET, f"/routers/{rid}", {"router": {"description": old_text}}))
    if "interfaces" in want:
        _interfaces(ex, step.key, rid, project, have["interfaces"], want["interfaces"])


def _gateway(ex: Executor, key: str, rid: str, project: str, old: str | None,
             new: str | None) -> None:
    def info(name: str | None) -> dict[str, Any]:
        return {"network_id": ex.id_near("networks", project, name)} if name else {}

    ex.api.call("PUT", NET, f"/routers/{rid}", {"router": {"external_gateway_info": info(new)}})
    ex.did(f"gateway of router {key}", lambda: ex.api.call(
        "PUT", NET, f"/routers/{rid}", {"router": {"external_gateway_info": info(old)}}))


def _interfaces(ex: Executor, key: str, rid: str, project: str, old: list[str],
                new: list[str]) -> None:
    def call(action: str, name: str) -> None:
        ex.api.call("PUT", NET, f"/routers/{rid}/{action}_router_interface",
                    {"subnet_id": ex.id_near("subnets", project, name)})

    for name in [n for n in new if n not in old]:
        call("add", name)
        ex.did(f"interface {name} of router {key}", lambda n=name: call("remove", n))
    for name in [n for n in old if n not in new]:
        call("remove", name)
        ex.did(f"interface {name} of router {key}", lambda n=name: call("add", n))


def security_groups(ex: Executor, step: Step) -> None:
    if step.action == "delete":
        ex.api.call("DELETE", NET, f"/security-groups/{step.have['_id']}")
        return
    want = step.want or {}
    project = want["project"]
    if step.action == "create":
        gid, have_rules = _group(ex, step.key, want)
    else:
        gid, have_rules = step.have["_id"], step.have.get("rules") or []
    if "description" in step.changes and want["name"] != "default":
        old_text = step.have.get("description", "")
        ex.api.call("PUT", NET, f"/security-groups/{gid}", {"security_group": {
            "description": want["description"]}})
        ex.did(f"security group {step.key}", lambda: ex.api.call(
            "PUT", NET, f"/security-groups/{gid}", {"security_group": {
                "description": old_text}}))
    if "rules" in want:
        _rules(ex, step.key, gid, project, have_rules, want["rules"])


def _group(ex: Executor, key: str, want: dict[str, Any]) -> tuple[str, list[dict]]:
    """The group made (or, for `default`, made to exist), and the rules it has."""
    pid = ex.id_of("projects", want["project"])
    if want["name"] == "default":
        # Neutron makes a project's default group when the project first uses the API; a
        # group made for the project (and removed at once) does that here.
        made = ex.api.call("POST", NET, "/security-groups", {"security_group": {
            "name": TOUCH, "project_id": pid}})["security_group"]
        ex.api.call("DELETE", NET, f"/security-groups/{made['id']}")
        found = ex.api.get(NET, "/security-groups", params={
            "project_id": pid, "name": "default"})["security_groups"]
        group = found[0]
    else:
        group = ex.api.call("POST", NET, "/security-groups", {"security_group": {
            "name": want["name"], "project_id": pid,
            **({"description": want["description"]} if "description" in want else {})}})[
            "security_group"]
        _made(ex, "security_groups", key, group["id"], f"/security-groups/{group['id']}")
    ex.current["security_groups"][key] = {"_id": group["id"]}
    names = {group["id"]: want["name"]}
    rules = []
    for r in group.get("security_group_rules") or []:
        shown = {f: r.get(f) for f in ("direction", "ethertype", "protocol", "port_range_min",
                                       "port_range_max", "remote_ip_prefix")}
        if r.get("remote_group_id"):
            shown["remote_group"] = names.get(r["remote_group_id"], r["remote_group_id"])
        rules.append({**rule(shown), "_id": r["id"]})
    return group["id"], rules


def _rules(ex: Executor, key: str, gid: str, project: str, have: list[dict],
           want: list[dict]) -> None:
    def make(r: dict[str, Any]) -> str:
        body = {k: v for k, v in r.items() if k not in ("remote_group", "_id")}
        if r.get("remote_group"):
            body["remote_group_id"] = ex.id_of("security_groups",
                                               f"{project}/{r['remote_group']}")
        made = ex.api.call("POST", NET, "/security-group-rules", {"security_group_rule": {
            "security_group_id": gid, **body}})["security_group_rule"]
        return made["id"]

    def drop(rid: str) -> None:
        ex.api.call("DELETE", NET, f"/security-group-rules/{rid}")

    plain_have = [plain(r) for r in have]
    for r in [r for r in want if r not in plain_have]:
        rid = make(r)
        ex.did(f"a rule of security group {key}", lambda i=rid: drop(i))
    for r in [r for r in have if plain(r) not in want]:
        drop(r["_id"])
        ex.did(f"a rule of security group {key}", lambda g=plain(r): make(g))
