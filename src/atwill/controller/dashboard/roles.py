"""Operator page for roles: the roles, who holds which on what project, grant and revoke.

Every change is one identity API call with the session's token, so the API's policy
decides (a member's forced URL or form gets its 403); the page itself is shown only once
the API agreed the user is a cloud admin (require_operator).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .client import ApiError
from .web import Form, checked_form, current, redirect, render, require_operator

router = APIRouter(prefix="/admin")
IDENTITY = "/identity/v3"


def assignment_row(entry: dict[str, Any]) -> dict[str, str] | None:
    """One project-scoped grant as the table shows it; domain and system grants are left out."""
    project = (entry.get("scope") or {}).get("project")
    user = entry.get("user")
    if not project or not user:
        return None
    return {"user_id": user["id"], "user": user.get("name", user["id"]),
            "project_id": project["id"], "project": project.get("name", project["id"]),
            "role_id": entry["role"]["id"], "role": entry["role"].get("name", "")}


def grant_target(data: Form) -> str:
    """The assignment's URL from the form: all three chosen, else a 400 that says so."""
    missing = [label for name, label in (("user", "a user"), ("project", "a project"),
                                         ("role", "a role")) if not data.get(name)]
    if missing:
        raise ApiError(400, f"Choose {', '.join(missing)}: a role is given to a user on "
                            "a project.")
    return (f"{IDENTITY}/projects/{data.get('project')}/users/{data.get('user')}/roles/"
            f"{data.get('role')}")


@router.get("/roles")
async def roles_get(request: Request) -> Response:
    sess = current(request)
    client = await require_operator(request, sess)
    roles = (await client.get(f"{IDENTITY}/roles"))["roles"]
    found = (await client.get(f"{IDENTITY}/role_assignments",
                              params={"include_names": "true"}))["role_assignments"]
    rows = [r for r in map(assignment_row, found) if r is not None]
    users = (await client.get(f"{IDENTITY}/users"))["users"]
    projects = (await client.get(f"{IDENTITY}/projects"))["projects"]
    return render(request, "admin/roles.html",
                  roles=sorted(roles, key=lambda r: r["name"]),
                  assignments=sorted(rows, key=lambda r: (r["project"], r["user"], r["role"])),
                  users=sorted(users, key=lambda u: u["name"]),
                  projects=sorted(projects, key=lambda p: p["name"]))


@router.post("/roles")
async def roles_post(request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    client = await require_operator(request, sess)
    if not data.get("name"):
        raise ApiError(400, "A role needs a name.")
    role: dict[str, Any] = {"name": data.get("name")}
    if data.get("description"):
        role["description"] = data.get("description")
    await client.post(f"{IDENTITY}/roles", {"role": role})
    return redirect(request, "/admin/roles")


@router.post("/roles/{role_id}/delete")
async def role_delete(role_id: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    client = await require_operator(request, sess)
    await client.delete(f"{IDENTITY}/roles/{role_id}")
    return redirect(request, "/admin/roles")


@router.post("/roles/grant")
async def role_grant(request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    client = await require_operator(request, sess)
    await client.put(grant_target(data))
    return redirect(request, "/admin/roles")


@router.post("/roles/revoke")
async def role_revoke(request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    client = await require_operator(request, sess)
    await client.delete(grant_target(data))
    return redirect(request, "/admin/roles")
