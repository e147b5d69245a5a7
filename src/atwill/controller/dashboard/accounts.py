"""Operator pages for identity: projects and users (with a first role on a project).

The identity API decides: listing projects or users is a cloud admin's read, so a
member's forced URL is refused with its 403 before anything is shown.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .client import Api, ApiError
from .web import Form, api, checked_form, current, redirect, render

router = APIRouter(prefix="/admin")
IDENTITY = "/identity/v3"


@router.get("/projects")
async def projects_get(request: Request) -> Response:
    sess = current(request)
    found = (await api(request, sess).get(f"{IDENTITY}/projects"))["projects"]
    return render(request, "admin/projects.html",
                  projects=sorted(found, key=lambda p: p["name"]))


@router.post("/projects")
async def projects_post(request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    await api(request, sess).post(f"{IDENTITY}/projects", {"project": {
        "name": data.get("name"), "description": data.get("description"),
        "domain_id": "default", "enabled": True}})
    return redirect(request, "/admin/projects")


@router.post("/projects/{project_id}/delete")
async def project_delete(project_id: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    if project_id == sess.project_id:
        raise ApiError(409, "This session is scoped to that project: switch to another "
                            "project before deleting it.")
    await api(request, sess).delete(f"{IDENTITY}/projects/{project_id}")
    return redirect(request, "/admin/projects")


async def _users_page(request: Request, client: Api, **extra: Any) -> Response:
    users = (await client.get(f"{IDENTITY}/users"))["users"]
    projects = (await client.get(f"{IDENTITY}/projects"))["projects"]
    roles = (await client.get(f"{IDENTITY}/roles"))["roles"]
    names = {p["id"]: p["name"] for p in projects}
    for user in users:
        user["project_name"] = names.get(user.get("default_project_id") or "", "")
    return render(request, "admin/users.html", users=sorted(users, key=lambda u: u["name"]),
                  projects=sorted(projects, key=lambda p: p["name"]),
                  roles=sorted(roles, key=lambda r: r["name"]), **extra)


@router.get("/users")
async def users_get(request: Request) -> Response:
    sess = current(request)
    return await _users_page(request, api(request, sess))


def user_body(data: Form) -> dict[str, Any]:
    if not data.raw("password"):
        raise ApiError(400, "A new user needs a password.")
    user: dict[str, Any] = {"name": data.get("name"), "password": data.raw("password"),
                            "domain_id": "default", "enabled": True}
    if data.get("project"):
        user["default_project_id"] = data.get("project")
    return {"user": user}


@router.post("/users")
async def users_post(request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    client = api(request, sess)
    if data.get("role") and not data.get("project"):
        raise ApiError(400, "A role is given on a project: choose the project too.")
    made = (await client.post(f"{IDENTITY}/users", user_body(data)))["user"]
    if data.get("role"):
        try:
            await client.put(f"{IDENTITY}/projects/{data.get('project')}/users/"
                             f"{made['id']}/roles/{data.get('role')}")
        except ApiError:
            # A user made without the role the form asked for is not what was asked.
            await client.delete(f"{IDENTITY}/users/{made['id']}")
            raise
    return redirect(request, "/admin/users")


@router.post("/users/{user_id}/delete")
async def user_delete(user_id: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    if user_id == sess.user_id:
        raise ApiError(409, "You cannot delete the user you are logged in as.")
    await api(request, sess).delete(f"{IDENTITY}/users/{user_id}")
    return redirect(request, "/admin/users")
