"""The admin's view over plain HTTP, for tests that poll.

A look through the `openstack` CLI costs a forked process, a password login and a
catalog (0.25-0.4 s on the loaded CI machine) and each cloud.token() an argon2 check;
a test waiting for a state it does not test the CLI on looks here instead: one admin
token per controller, one GET per look.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cloud import Cloud, unique

V = "/compute/v2.1"
_tokens: dict[tuple[str, str], str] = {}


def admin_token(cloud: Cloud) -> str:
    """The admin's token for this controller, issued once (a restart keeps it valid)."""
    key = (cloud.url, str(cloud.state_dir))
    if key not in _tokens:
        _tokens[key] = cloud.token()
    return _tokens[key]


def admin_request(cloud: Cloud, method: str, path: str, **kw: Any) -> httpx.Response:
    """One request as the admin; a 401 (a test revoked the cached token) logs in again."""
    for _ in range(2):
        with cloud.http(admin_token(cloud)) as client:
            resp = client.request(method, path, **kw)
        if resp.status_code != 401:
            break
        _tokens.pop((cloud.url, str(cloud.state_dir)), None)
    return resp


def show_server(cloud: Cloud, server_id: str, version: str = "2.47") -> dict[str, Any]:
    """GET /servers/{id} as the admin: the fields `openstack server show` prints (status,
    fault, OS-EXT-SRV-ATTR:host, ...)."""
    with cloud.http(admin_token(cloud)) as client:
        resp = client.get(f"{V}/servers/{server_id}",
                          headers={"OpenStack-API-Version": f"compute {version}"})
    assert resp.status_code == 200, resp.text
    return resp.json()["server"]


def network_id(cloud: Cloud, name: str) -> str:
    """The id of the (first) network called name, as `network list --name` lists it."""
    with cloud.http(admin_token(cloud)) as client:
        found = client.get("/network/v2.0/networks", params={"name": name}).json()
    return found["networks"][0]["id"]


def image_and_flavor(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory,
                     prefix: str) -> Iterator[str]:
    """A module fixture's body: a small raw image named prefix-..., and a flavor named
    after its id plus "-flavor" (64 MiB, 1 GB, 1 vCPU); both deleted after."""
    data = tmp_path_factory.mktemp(prefix) / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    made = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                           "--container-format", "bare", unique(prefix), "-f", "json")["id"]
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1",
                    made + "-flavor")
    try:
        yield made
    finally:
        cloud.openstack("image", "delete", made)
        cloud.openstack("flavor", "delete", made + "-flavor")
