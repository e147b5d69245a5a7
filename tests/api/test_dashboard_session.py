"""Dashboard sessions: login, cookies, CSRF, logout, the project switcher, operator pages.

Plain HTTP here (the browser tests are in test_dashboard_browser.py): what a browser
sends, checked on what the controller answers and stores.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute

from atwill.controller.dashboard.app import MODULES
from atwill.controller.dashboard.sessions import key_of
from atwill.controller.db.dashboard import DashboardSession
from atwill.controller.db.session import Database
from tests.api.dashboard_web import D, WebUser, csrf_of
from tests.cloud import Cloud, unique

TABLES = ("networks", "subnets", "dashboard_sessions", "images", "keypairs", "instances")


@pytest.fixture(scope="module")
def member(cloud: Cloud) -> Iterator[str]:
    project, user = unique("dashproj"), unique("dashuser")
    other = unique("dashother")
    cloud.openstack("project", "create", project)
    cloud.openstack("project", "create", other)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.openstack("role", "add", "--project", other, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    try:
        yield user
    finally:
        cloud.openstack("user", "delete", user)
        cloud.openstack("project", "delete", project, other)


@pytest.fixture
def web(cloud: Cloud) -> Iterator[WebUser]:
    user = WebUser(cloud)
    try:
        yield user
    finally:
        user.close()


def session_token(cloud: Cloud, cookie: str) -> str:
    db = Database(cloud.db_url())
    try:
        with db.session() as session:
            return session.get(DashboardSession, key_of(cookie)).token
    finally:
        db.dispose()


def rows(cloud: Cloud) -> dict[str, list]:
    return {k: v for k, v in cloud.db_snapshot().items() if k in TABLES}


def test_root_sends_browsers_to_the_dashboard_and_api_clients_get_json(cloud: Cloud) -> None:
    with cloud.http() as client:
        page = client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
        api = client.get("/", headers={"Accept": "application/json"})
        login = client.get(f"{D}/")
    assert page.status_code == 303 and page.headers["location"] == "/dashboard/"
    assert api.status_code == 200 and api.json()["name"] == "atwill"
    # Not logged in: the login page, which sets no session cookie.
    assert login.status_code == 303 and login.headers["location"] == "/dashboard/login"


def test_admin_logs_in_with_a_strict_cookie_holding_only_a_reference(
        cloud: Cloud, web: WebUser) -> None:
    resp = web.login("admin", cloud.admin_password, "admin")
    assert resp.status_code == 303 and resp.headers["location"] == "/dashboard/"
    cookie = next(h for h in resp.headers.get_list("set-cookie")
                  if h.startswith("atwill_dashboard="))
    flags = cookie.lower()
    assert "httponly" in flags and "secure" in flags and "samesite=strict" in flags
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) >= 43  # 256 bits, base64
    stored = rows(cloud)["dashboard_sessions"]
    # The table keeps the hash of the cookie, never the cookie itself.
    assert all(value not in map(str, row) for row in stored)
    page = web.client.get(f"{D}/")
    assert page.status_code == 200 and "Overview of admin" in page.text
    assert 'href="/dashboard/admin/nodes"' in page.text
    assert web.client.get(f"{D}/admin/nodes").status_code == 200


def test_wrong_password_is_refused_and_opens_no_session(cloud: Cloud, web: WebUser) -> None:
    before = rows(cloud)
    resp = web.login("admin", "not-the-password", "admin")
    assert resp.status_code == 401 and "Wrong user name, password or project" in resp.text
    assert rows(cloud) == before


def test_login_without_the_form_token_is_refused(cloud: Cloud, web: WebUser) -> None:
    before = rows(cloud)
    resp = web.client.post(f"{D}/login", data={"user": "admin",
                                                "password": cloud.admin_password})
    assert resp.status_code == 403 and rows(cloud) == before


def test_member_sees_no_operator_pages_and_a_forced_url_is_403(
        cloud: Cloud, web: WebUser, member: str) -> None:
    web.login_as(member)
    page = web.client.get(f"{D}/")
    assert page.status_code == 200 and "/admin/nodes" not in page.text
    for path in ("/admin/nodes", "/admin/hypervisors", "/admin/nodes/events"):
        resp = web.client.get(D + path)
        assert resp.status_code == 403, (path, resp.text)
    before = rows(cloud)
    resp = web.post("/admin/tokens", {"description": "from a member"})
    assert resp.status_code == 403
    assert rows(cloud) == before


@pytest.mark.parametrize("csrf", [None, "", "wrong-token"])
def test_a_post_without_the_right_csrf_token_is_403_and_changes_nothing(
        cloud: Cloud, web: WebUser, member: str, csrf: str | None) -> None:
    web.login_as(member)
    before = rows(cloud)
    resp = web.post("/networks", {"name": unique("csrfnet"), "cidr": "10.77.0.0/24"},
                    csrf=csrf)
    assert resp.status_code == 403 and "security token" in resp.text
    assert rows(cloud) == before


def test_project_switcher_rescopes_the_session(cloud: Cloud, web: WebUser,
                                               member: str) -> None:
    web.login_as(member)
    page = web.client.get(f"{D}/projects")
    options = dict(re.findall(r'<option value="([0-9a-f]+)"[^>]*>([^<]+)</option>', page.text))
    other = next(pid for pid, name in options.items() if name.startswith("dashother"))
    resp = web.post("/projects", {"project_id": other})
    assert resp.status_code == 303
    assert "Overview of dashother" in web.client.get(f"{D}/").text


def test_logout_revokes_the_token_and_the_old_cookie_opens_nothing(
        cloud: Cloud, web: WebUser, member: str) -> None:
    web.login_as(member)
    cookie = web.client.cookies.get("atwill_dashboard")
    token = session_token(cloud, cookie)
    sessions = rows(cloud)["dashboard_sessions"]
    csrf = csrf_of(web.client.get(f"{D}/").text)
    resp = web.client.post(f"{D}/logout", data={"csrf": csrf})
    assert resp.status_code == 303 and resp.headers["location"] == "/dashboard/login"
    assert len(rows(cloud)["dashboard_sessions"]) == len(sessions) - 1
    with cloud.http(cloud.token()) as client:
        check = client.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert check.status_code == 404, check.text
    # A copy of the cookie taken before logging out.
    with cloud.http() as client:
        client.cookies.set("atwill_dashboard", cookie, path="/dashboard")
        page = client.get(f"{D}/instances")
        post = client.post(f"{D}/networks", data={"csrf": csrf, "name": unique("late")})
    assert page.status_code == 303 and page.headers["location"] == "/dashboard/login"
    assert post.status_code == 403


def form_routes() -> list[tuple[str, str]]:
    """(method, path) of every dashboard route that changes something, but the login form
    (its own token, tested above): path parameters filled with ids that exist nowhere."""
    found = []
    for route in (r for module in MODULES for r in module.router.routes):
        if not isinstance(route, APIRoute) or route.path == "/login":
            continue
        for method in sorted(route.methods - {"GET", "HEAD"}):
            found.append((method, re.sub(r"\{[^}]+\}", uuid.uuid4().hex, route.path)))
    return found


def test_every_form_route_refuses_a_missing_or_wrong_csrf_token(cloud: Cloud,
                                                               web: WebUser) -> None:
    routes = form_routes()
    # The forms this suite knows of: a new route is covered without editing this list.
    assert len(routes) >= 40 and ("POST", "/logout") in routes
    web.login_as("admin")  # an admin: no route is refused for the role before the token
    before = rows(cloud)
    for method, path in routes:
        for token in (None, "wrong-token"):
            fields = {"name": unique("csrfall"), "size": "1"}
            if token is not None:
                fields["csrf"] = token
            resp = web.client.request(method, D + path, data=fields,
                                      headers={"X-CSRF-Token": token or ""})
            assert resp.status_code == 403, (method, path, token, resp.status_code)
            assert "security token" in resp.text, (method, path, token)
    assert rows(cloud) == before
    assert web.client.get(f"{D}/").status_code == 200  # still logged in: not a logout
