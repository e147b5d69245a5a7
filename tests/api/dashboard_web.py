"""A dashboard user without a browser: an HTTP client that logs in and posts forms."""

from __future__ import annotations

import re
import ssl
from typing import Any

import httpx

from tests.cloud import Cloud

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
D = "/dashboard"


class WebUser:
    """Cookies kept by httpx as a browser keeps them; forms carry the page's CSRF token."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.client = httpx.Client(base_url=cloud.url, timeout=60,
                                   verify=ssl.create_default_context(cafile=cloud.cacert))

    def close(self) -> None:
        self.client.close()

    def login(self, user: str, password: str, project: str = "") -> httpx.Response:
        page = self.client.get(f"{D}/login")
        return self.client.post(f"{D}/login", data={
            "csrf": csrf_of(page.text), "user": user, "password": password,
            "project": project, "domain": "Default"})

    def login_as(self, user: str) -> None:
        info = self.cloud.users.get(user)
        password = info["password"] if info else self.cloud.admin_password
        project = info["project"] if info else "admin"
        resp = self.login(user, password, project)
        assert resp.status_code == 303, resp.text

    def csrf(self) -> str:
        return csrf_of(self.client.get(f"{D}/").text)

    def post(self, path: str, data: dict[str, Any], csrf: str | None = "page") -> httpx.Response:
        fields = dict(data)
        if csrf == "page":
            fields["csrf"] = self.csrf()
        elif csrf is not None:
            fields["csrf"] = csrf
        return self.client.post(D + path, data=fields)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html[:2000]
    return found.group(1)
