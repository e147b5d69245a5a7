"""A controller of its own, with chosen settings, for tests that lock or throttle logins
(the shared session cloud must keep its admin unlocked and its logins unthrottled)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from tests.cloud import Cloud
from tests.conftest import fresh_database_url


def own_cloud(engine: str, **settings: Any) -> Iterator[Cloud]:
    for url in fresh_database_url(engine):
        cloud = Cloud(url)
        try:
            cloud.init()
            cloud.configure(**settings)
            cloud.start()
            yield cloud
        finally:
            cloud.destroy()


def login(client: httpx.Client, name: str, password: str) -> httpx.Response:
    return client.post("/identity/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["password"], "password": {"user": {
            "name": name, "domain": {"id": "default"}, "password": password}}}}})


def make_user(cloud: Cloud, admin_token: str, name: str, password: str) -> str:
    with cloud.http(admin_token) as client:
        resp = client.post("/identity/v3/users", json={"user": {
            "name": name, "password": password}})
    assert resp.status_code == 201, resp.text
    return resp.json()["user"]["id"]
