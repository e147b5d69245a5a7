"""The shared microversion middleware: both services parse once, echo, and refuse alike."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from atwill.controller.compute.common import VERSION_STATE as COMPUTE_STATE
from atwill.controller.compute.common import Microversions
from atwill.controller.microversion_middleware import MicroversionMiddleware
from atwill.controller.volume.common import PROJECT_STATE, VolumeRequests
from atwill.controller.volume.common import VERSION_STATE as VOLUME_STATE


class Client:
    """Requests through the ASGI app in process (no server, no TestClient)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.get(path, headers=headers)

        return asyncio.run(call())


def _app(middleware: type[MicroversionMiddleware], key: str) -> Client:
    async def echo(request: Request) -> JSONResponse:
        state = request.scope["state"]
        return JSONResponse({"path": request.url.path, "version": str(state[key]),
                             "project": state.get(PROJECT_STATE)})

    app = Starlette(routes=[Route("/{rest:path}", echo)])
    app.add_middleware(middleware)
    return Client(app)


def test_compute_parses_and_echoes_both_headers() -> None:
    client = _app(Microversions, COMPUTE_STATE)
    resp = client.get("/v2.1/servers", headers={"X-OpenStack-Nova-API-Version": "2.79"})
    assert resp.json()["version"] == "2.79"
    assert resp.headers["openstack-api-version"] == "compute 2.79"
    assert resp.headers["x-openstack-nova-api-version"] == "2.79"
    assert client.get("/v2.1/servers").json()["version"] == "2.1"


def test_compute_refuses_a_version_above_the_maximum_as_nova() -> None:
    resp = _app(Microversions, COMPUTE_STATE).get(
        "/v2.1/servers", headers={"OpenStack-API-Version": "compute 2.999"})
    assert resp.status_code == 406
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["openstack-api-version"] == "compute 2.1"
    assert "2.999" in resp.json()["computeFault"]["message"]


def test_volume_strips_the_project_and_echoes_its_version() -> None:
    client = _app(VolumeRequests, VOLUME_STATE)
    resp = client.get("/v3/abc123/volumes/detail",
                      headers={"OpenStack-API-Version": "volume 3.44"})
    assert resp.json() == {"path": "/v3/volumes/detail", "version": "3.44",
                           "project": "abc123"}
    assert resp.headers["openstack-api-version"] == "volume 3.44"
    assert "x-openstack-nova-api-version" not in resp.headers
    assert client.get("/v3/volumes").json()["project"] is None


def test_volume_refuses_a_bad_version_with_its_minimum_echoed() -> None:
    resp = _app(VolumeRequests, VOLUME_STATE).get(
        "/v3/volumes", headers={"OpenStack-API-Version": "volume 3.999"})
    assert resp.status_code == 406
    assert resp.headers["openstack-api-version"] == "volume 3.0"
    (fault,) = resp.json().values()
    assert fault["code"] == 406
