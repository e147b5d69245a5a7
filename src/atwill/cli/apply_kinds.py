"""One handler per kind of a profile's entries: create, change, replace or delete it
through the APIs, recording the undo of each request (see apply_steps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.profile_plan import Step
from . import apply_network, apply_zones
from .apply_api import ApplyError

if TYPE_CHECKING:
    from .apply_steps import Executor

ID = "identity"


def roles(ex: Executor, step: Step) -> None:
    if step.action == "create":
        made = ex.api.call("POST", ID, "/roles", {"role": {"name": step.key}})["role"]
        ex.did(f"role {step.key}", lambda: ex.api.call("DELETE", ID, f"/roles/{made['id']}"))
        ex.current["roles"][step.key] = {"name": step.key, "_id": made["id"]}
    elif step.action == "delete":
        ex.api.call("DELETE", ID, f"/roles/{step.have['_id']}")


def projects(ex: Executor, step: Step) -> None:
    want = step.want or {}
    if step.action == "delete":
        ex.api.call("DELETE", ID, f"/projects/{step.have['_id']}")
        return
    fields = {k: want[k] for k in ("description", "enabled") if k in want}
    if step.action == "create":
        made = ex.api.call("POST", ID, "/projects", {"project": {
            "name": step.key, "domain_id": "default", **fields}})["project"]
        pid = made["id"]
        ex.did(f"project {step.key}", lambda: ex.api.call("DELETE", ID, f"/projects/{pid}"))
        ex.current["projects"][step.key] = {"name": step.key, "_id": pid}
        if want.get("quotas"):
            ex.set_quotas(pid, want["quotas"])
        return
    pid, new = step.have["_id"], {k: v[1] for k, v in step.changes.items() if k != "quotas"}
    if new:
        old = {k: step.have.get(k) for k in new}
        ex.api.call("PATCH", ID, f"/projects/{pid}", {"project": new})
        ex.did(f"project {step.key}",
               lambda: ex.api.call("PATCH", ID, f"/projects/{pid}", {"project": old}))
    if "quotas" in step.changes:
        old_q, new_q = step.changes["quotas"]
        ex.set_quotas(pid, new_q)
        ex.did(f"quotas of {step.key}", lambda: ex.set_quotas(
            pid, {k: v for k, v in old_q.items() if v is not None}))


def users(ex: Executor, step: Step) -> None:
    want = step.want or {}
    if step.action == "delete":
        ex.api.call("DELETE", ID, f"/users/{step.have['_id']}")
        return
    fields = {k: want[k] for k in ("email", "description", "enabled", "password")
              if k in want}
    if "default_project" in want:
        fields["default_project_id"] = (ex.id_of("projects", want["default_project"])
                                        if want["default_project"] else None)
    if step.action == "create":
        made = ex.api.call("POST", ID, "/users", {"user": {
            "name": step.key, "domain_id": "default", **fields}})["user"]
        uid = made["id"]
        ex.did(f"user {step.key}", lambda: ex.api.call("DELETE", ID, f"/users/{uid}"))
        ex.current["users"][step.key] = {"name": step.key, "_id": uid}
        _grants(ex, step.key, uid, [], want.get("roles") or [])
        return
    uid = step.have["_id"]
    new = {k: v for k, v in fields.items() if k != "password" and (
        k in step.changes or (k == "default_project_id" and "default_project" in step.changes))}
    if new:
        old = {k: step.have.get(k) for k in new if k != "default_project_id"}
        if "default_project_id" in new:
            was = step.have.get("default_project")
            old["default_project_id"] = ex.id_of("projects", was) if was else None
        ex.api.call("PATCH", ID, f"/users/{uid}", {"user": new})
        ex.did(f"user {step.key}",
               lambda: ex.api.call("PATCH", ID, f"/users/{uid}", {"user": old}))
    if "roles" in step.changes:
        _grants(ex, step.key, uid, *step.changes["roles"])


def _grants(ex: Executor, user: str, uid: str, old: list[dict], new: list[dict]) -> None:
    def path(grant: dict[str, str]) -> str:
        return (f"/projects/{ex.id_of('projects', grant['project'])}/users/{uid}/roles/"
                f"{ex.id_of('roles', grant['role'])}")

    for grant in [g for g in new if g not in old]:
        ex.api.call("PUT", ID, path(grant))
        ex.did(f"role {grant['role']} of {user} on {grant['project']}",
               lambda p=path(grant): ex.api.call("DELETE", ID, p))
    for grant in [g for g in old if g not in new]:
        ex.api.call("DELETE", ID, path(grant))
        ex.did(f"role {grant['role']} of {user} on {grant['project']}",
               lambda p=path(grant): ex.api.call("PUT", ID, p))


def flavors(ex: Executor, step: Step) -> None:
    if step.action == "delete":
        ex.api.call("DELETE", "compute", f"/flavors/{step.have['_id']}")
        return
    if step.action == "create":
        _flavor_make(ex, step.key, step.want or {})
        return
    if step.action == "replace":
        old = step.have
        ex.api.call("DELETE", "compute", f"/flavors/{old['_id']}")
        ex.did(f"flavor {step.key}", lambda: _flavor_make(ex, step.key, old, old["_id"]))
        _flavor_make(ex, step.key, {**old, **(step.want or {})})
        return
    fid = step.have["_id"]
    if "description" in step.changes:
        old_text = step.have.get("description")
        ex.api.call("PUT", "compute", f"/flavors/{fid}",
                    {"flavor": {"description": step.changes["description"][1]}})
        ex.did(f"flavor {step.key}", lambda: ex.api.call(
            "PUT", "compute", f"/flavors/{fid}", {"flavor": {"description": old_text}}))
    if "extra_specs" in step.changes:
        _specs(ex, step.key, fid, *step.changes["extra_specs"])


def _flavor_make(ex: Executor, name: str, want: dict[str, Any],
                 flavor_id: str | None = None) -> None:
    body = {"name": name, "vcpus": want["vcpus"], "ram": want["ram"],
            "disk": want.get("disk", 0), "OS-FLV-EXT-DATA:ephemeral": want.get("ephemeral", 0),
            "swap": want.get("swap", 0),
            "os-flavor-access:is_public": want.get("is_public", True), "id": flavor_id}
    if want.get("description") is not None:
        body["description"] = want["description"]
    made = ex.api.call("POST", "compute", "/flavors", {"flavor": body})["flavor"]
    fid = made["id"]
    ex.did(f"flavor {name}", lambda: ex.api.call("DELETE", "compute", f"/flavors/{fid}"))
    ex.current["flavors"][name] = {**want, "_id": fid}
    if want.get("extra_specs"):
        ex.api.call("POST", "compute", f"/flavors/{fid}/os-extra_specs",
                    {"extra_specs": want["extra_specs"]})


def _specs(ex: Executor, name: str, fid: str, old: dict[str, str],
           new: dict[str, str]) -> None:
    base = f"/flavors/{fid}/os-extra_specs"
    changed = {k: v for k, v in new.items() if old.get(k) != v}
    if changed:
        ex.api.call("POST", "compute", base, {"extra_specs": changed})
        restore = {k: old[k] for k in changed if k in old}
        added = [k for k in changed if k not in old]
        ex.did(f"extra specs of {name}", lambda: (
            [ex.api.call("DELETE", "compute", f"{base}/{k}") for k in added],
            restore and ex.api.call("POST", "compute", base, {"extra_specs": restore})))
    for key in [k for k in old if k not in new]:
        ex.api.call("DELETE", "compute", f"{base}/{key}")
        ex.did(f"extra spec {key} of {name}", lambda k=key: ex.api.call(
            "POST", "compute", base, {"extra_specs": {k: old[k]}}))


def inside(base: Path, name: str) -> Path:
    """base/name, refused if a symbolic link on the way leads out of base."""
    path = (base / name).resolve()
    if not path.is_relative_to(base.resolve()):
        raise ApplyError(f"image file {name} leads out of the profile's directory "
                         f"({path}); copy the image beside the profile")
    return path


def images(ex: Executor, step: Step) -> None:
    want = step.want or {}
    if step.action == "delete":
        ex.api.call("DELETE", "image", f"/images/{step.have['_id']}")
        return
    fields = ["visibility", "min_disk", "min_ram", "protected"]
    if step.action == "create":
        path = inside(ex.base, want["file"])
        body = {"name": step.key, "disk_format": want.get("disk_format", "qcow2"),
                "container_format": want.get("container_format", "bare"),
                **{k: want[k] for k in fields[:3] if k in want},
                **(want.get("properties") or {})}
        iid = ex.api.call("POST", "image", "/images", body)["id"]
        ex.did(f"image {step.key}", lambda: ex.api.call("DELETE", "image", f"/images/{iid}"))
        with path.open("rb") as data:
            ex.api.call("PUT", "image", f"/images/{iid}/file", content=data,
                        headers={"Content-Type": "application/octet-stream"})
        if want.get("protected"):
            _patch_image(ex, step.key, iid, {"protected": True}, {"protected": False})
        return
    new = {k: v[1] for k, v in step.changes.items() if k in fields}
    if new:
        _patch_image(ex, step.key, step.have["_id"], new,
                     {k: step.have.get(k) for k in new})
    if "properties" in step.changes:
        _image_properties(ex, step.key, step.have["_id"], *step.changes["properties"])


def _image_properties(ex: Executor, name: str, iid: str, old: dict[str, str],
                      new: dict[str, str]) -> None:
    """The image's properties made new's: added or replaced ('add' does both for a
    property), removed when new leaves them out; undone the other way round."""
    def patch(have: dict[str, str], want: dict[str, str]) -> None:
        ops = [{"op": "add", "path": _pointer(k), "value": v} for k, v in want.items()
               if have.get(k) != v]
        ops += [{"op": "remove", "path": _pointer(k)} for k in have if k not in want]
        if ops:
            ex.api.call("PATCH", "image", f"/images/{iid}", content=json.dumps(ops),
                        headers={"Content-Type":
                                 "application/openstack-images-v2.1-json-patch"})

    patch(old or {}, new or {})
    ex.did(f"properties of image {name}", lambda: patch(new or {}, old or {}))


def _pointer(key: str) -> str:
    """key as a JSON pointer (RFC 6901): '~' and '/' escaped, so a property names itself."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def _patch_image(ex: Executor, name: str, iid: str, new: dict[str, Any],
                 old: dict[str, Any]) -> None:
    def patch(values: dict[str, Any]) -> None:
        ops = [{"op": "replace", "path": f"/{k}", "value": v} for k, v in values.items()]
        ex.api.call("PATCH", "image", f"/images/{iid}", content=json.dumps(ops),
                    headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})

    patch(new)
    ex.did(f"image {name}", lambda: patch(old))


HANDLERS = {"roles": roles, "projects": projects, "users": users, "flavors": flavors,
            "images": images, "availability_zones": apply_zones.availability_zones,
            "networks": apply_network.networks,
            "subnets": apply_network.subnets, "routers": apply_network.routers,
            "security_groups": apply_network.security_groups}
