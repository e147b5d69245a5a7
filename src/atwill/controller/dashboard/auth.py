"""Login against the identity API, logout (the token revoked), the project switcher."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from . import sessions
from .client import ApiError
from .web import api, base, checked_form, ctl_of, current, form, redirect, render

router = APIRouter()
TOKENS = "/identity/v3/auth/tokens?nocatalog"


def _cookie(request: Request, response: Response, name: str, value: str,
            max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=base(request) or "/",
                        secure=True, httponly=True, samesite="strict")


@router.get("/login")
def login_get(request: Request) -> Response:
    return _login_page(request)


def _login_page(request: Request, status: int = 200, error: str = "",
                **fields: str) -> Response:
    secret = sessions.new_secret()
    response = render(request, "login.html", status=status, login_csrf=secret, error=error,
                      fields=fields)
    _cookie(request, response, sessions.LOGIN_COOKIE, secret, 3600)
    return response


@router.post("/login")
async def login_post(request: Request) -> Response:
    data = await form(request)
    presented, expected = data.get("csrf"), request.cookies.get(sessions.LOGIN_COOKIE, "")
    if not presented or not hmac.compare_digest(presented.encode(), expected.encode()):
        return _login_page(request, 403, "The login form expired; please try again.")
    user, domain = data.get("user"), data.get("domain") or "Default"
    project = data.get("project")
    fields = {"user": user, "domain": domain, "project": project}
    if not user or not data.raw("password"):
        return _login_page(request, 400, "User name and password are required.", **fields)
    try:
        token_id, token = await _password_token(request, user, data.raw("password"),
                                                domain, project)
    except ApiError as error:
        message = "Wrong user name, password or project." if error.status == 401 \
            else error.message
        return _login_page(request, error.status, message, **fields)
    cookie = sessions.create(ctl_of(request), token_id, token)
    response = redirect(request, "/")
    _cookie(request, response, sessions.COOKIE, cookie, 86400)
    response.delete_cookie(sessions.LOGIN_COOKIE, path=base(request) or "/")
    return response


async def _password_token(request: Request, user: str, password: str, domain: str,
                          project: str) -> tuple[str, dict[str, Any]]:
    identity = {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": domain}, "password": password}}}
    auth: dict[str, Any] = {"identity": identity}
    if project:
        auth["scope"] = {"project": {"name": project, "domain": {"name": domain}}}
    resp = await api(request).call("POST", TOKENS, json={"auth": auth})
    token_id, token = resp.headers["X-Subject-Token"], resp.json()["token"]
    if project:
        return token_id, token
    # No project named: the first one the user has a role on, as Horizon does.
    projects = (await api(request).with_token(token_id).get("/identity/v3/auth/projects"))
    if not projects["projects"]:
        return token_id, token
    return await _rescope(request, token_id, projects["projects"][0]["id"])


async def _rescope(request: Request, token_id: str,
                   project_id: str) -> tuple[str, dict[str, Any]]:
    body = {"auth": {"identity": {"methods": ["token"], "token": {"id": token_id}},
                     "scope": {"project": {"id": project_id}}}}
    resp = await api(request).call("POST", TOKENS, json=body)
    return resp.headers["X-Subject-Token"], resp.json()["token"]


async def _revoke(request: Request, token_id: str) -> None:
    try:
        await api(request).with_token(token_id).call(
            "DELETE", "/identity/v3/auth/tokens", headers={"X-Subject-Token": token_id})
    except ApiError:
        pass  # already expired or revoked: the session goes anyway


@router.post("/logout")
async def logout(request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    await _revoke(request, sess.token)
    sessions.remove(ctl_of(request), sess.key)
    response = redirect(request, "/login")
    response.delete_cookie(sessions.COOKIE, path=base(request) or "/")
    return response


@router.get("/projects")
async def projects_get(request: Request) -> Response:
    sess = current(request)
    found = await api(request, sess).get("/identity/v3/auth/projects")
    return render(request, "projects.html", projects=found["projects"])


@router.post("/projects")
async def projects_post(request: Request) -> Response:
    sess = current(request)
    data = await checked_form(request, sess)
    token_id, token = await _rescope(request, sess.token, data.get("project_id"))
    sessions.rescope(ctl_of(request), sess.key, token_id, token)
    await _revoke(request, sess.token)
    return redirect(request, "/")
