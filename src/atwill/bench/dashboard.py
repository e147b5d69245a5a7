"""The dashboard's page budget: the instance list with N instances, server time.

A throwaway controller (HTTPS, SQLite, no nodes) gets N instances made through the
compute API, named bench-nonode-NNN: with no node to place them they are rows in ERROR
(no valid host), which the list page renders like any other. The figure is the median
time of GET /dashboard/instances (the whole page: the list, plus the launch dialog's
images, flavors, networks, key pairs, groups and zones) over keep-alive loopback HTTPS,
an upper bound of its server time; the same-run baseline is the JSON list of the same
instances that `openstack server list` asks for (GET /compute/v2.1/servers/detail).
"""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import httpx

from ..devcloud import Cloud

COMPUTE = {"OpenStack-API-Version": "compute 2.79"}
BUDGET_MS = 300.0


def _seed(cloud: Cloud, client: httpx.Client, count: int) -> None:
    project = client.get("/identity/v3/projects", params={"name": "admin"}).json()
    project_id = project["projects"][0]["id"]
    unlimited = {"quota_set": {"instances": -1, "cores": -1, "ram": -1}}
    _ok(client.put(f"/compute/v2.1/os-quota-sets/{project_id}", json=unlimited))
    flavor = _ok(client.post("/compute/v2.1/flavors", json={"flavor": {
        "name": "bench-tiny", "ram": 64, "vcpus": 1, "disk": 1}}))["flavor"]["id"]
    image = _ok(client.post("/image/v2/images", json={
        "name": "bench-image", "disk_format": "raw", "container_format": "bare"}))["id"]
    _ok(client.put(f"/image/v2/images/{image}/file", content=b"\0" * 4096,
                   headers={"Content-Type": "application/octet-stream"}))
    for index in range(count):
        _ok(client.post("/compute/v2.1/servers", headers=COMPUTE, json={"server": {
            "name": f"bench-nonode-{index:03}", "imageRef": image, "flavorRef": flavor,
            "networks": "none"}}))


def _ok(resp: httpx.Response) -> Any:
    if resp.status_code >= 300:
        raise RuntimeError(f"{resp.request.method} {resp.request.url}: {resp.status_code} "
                           f"{resp.text[:300]}")
    return resp.json() if resp.content else None


def _login(cloud: Cloud, web: httpx.Client) -> None:
    page = web.get("/dashboard/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    if csrf is None:
        raise RuntimeError("the login page has no CSRF field")
    resp = web.post("/dashboard/login", data={
        "csrf": csrf.group(1), "user": "admin", "password": cloud.admin_password,
        "project": "admin", "domain": "Default"})
    if resp.status_code != 303:
        raise RuntimeError(f"dashboard login: {resp.status_code}")


def _time_ms(client: httpx.Client, path: str, headers: dict[str, str], expect: str) -> float:
    started = time.perf_counter()
    resp = client.get(path, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    if resp.status_code != 200 or expect not in resp.text:
        raise RuntimeError(f"GET {path}: {resp.status_code}")
    return elapsed


def main(instances: int = 200, rounds: int = 20) -> dict[str, float]:
    cloud = Cloud()
    try:
        cloud.init()
        cloud.configure(login_rate=0)
        cloud.start()
        with cloud.http(cloud.token()) as api, cloud.http() as web:
            _seed(cloud, api, instances)
            _login(cloud, web)
            last = f"bench-nonode-{instances - 1:03}"
            page, listing = [], []
            for _ in range(rounds + 1):  # the first of each warms caches and is dropped
                page.append(_time_ms(web, "/dashboard/instances", {}, last))
                listing.append(_time_ms(api, "/compute/v2.1/servers/detail", COMPUTE, last))
        page_ms, list_ms = statistics.median(page[1:]), statistics.median(listing[1:])
        results = {"instances": instances, "rounds": rounds, "page_ms": page_ms,
                   "page_p90_ms": sorted(page[1:])[int(0.9 * (rounds - 1))],
                   "api_list_ms": list_ms, "page_to_api_ratio": page_ms / list_ms,
                   "budget_ms": BUDGET_MS, "budget_met": float(page_ms < BUDGET_MS)}
    finally:
        cloud.destroy()
    for key, value in results.items():
        print(f"{key:20} {value:10.2f}" if isinstance(value, float) else f"{key:20} {value:10}")
    return results
