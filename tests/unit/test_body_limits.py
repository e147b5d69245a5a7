"""BodyLimits and json_body: every body is capped, typed and checked before a route reads it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import Depends, Request
from pydantic import BaseModel

from atwill.controller.service import field, json_body, make_service_app, read_json

with warnings.catch_warnings():
    # Starlette asks for httpx2, which this project does not install; httpx works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

LIMIT = 4096
seen: list[Any] = []


class Typed(BaseModel):
    name: str
    extra: dict[str, Any] = {}


def build() -> TestClient:
    ctl = SimpleNamespace(settings=SimpleNamespace(max_request_body=LIMIT))
    app = make_service_app(ctl)  # type: ignore[arg-type]

    @app.post("/plain")
    def plain(body: dict = Depends(json_body)) -> dict:
        seen.append(body)
        return {"ok": field(body, "name", str)}

    @app.post("/typed")
    def typed(body: Typed) -> dict:
        seen.append(body)
        return {"ok": body.name}

    @app.patch("/patch")
    async def patch(request: Request) -> dict:
        body = await read_json(request, ("application/openstack-images-v2.1-json-patch",))
        seen.append(body)
        return {"ok": True}

    @app.put("/x/file")
    async def upload(request: Request) -> dict:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size}

    return TestClient(app)


@pytest.fixture
def client() -> Iterator[TestClient]:
    seen.clear()
    with build() as c:
        yield c


def chunked(size: int) -> Iterator[bytes]:
    yield b'{"name": "'
    for _ in range(size // 1024):
        yield b"x" * 1024
    yield b'"}'


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("path", ["/plain", "/typed"])
@pytest.mark.parametrize("content, headers, status", [
    (b"{\"name\":" + b"[" * 1500 + b"]" * 1500 + b"}", JSON, 400),
    (rb'{"name": "a\ud800"}', JSON, 400),
    (rb'{"name": "a", "extra": {"\udc00": 1}}', JSON, 400),
    (b'{"name": "a"}', {"Content-Type": "text/plain"}, 415),
    (b'{"name": "a"}', {"Content-Type": "application/x-www-form-urlencoded"}, 415),
])
def test_bad_bodies_are_refused_before_the_route(client: TestClient, path: str,
                                                 content: bytes, headers: dict,
                                                 status: int) -> None:
    resp = client.post(path, content=content, headers=headers)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == status
    assert len(resp.text) < 500
    assert seen == []


@pytest.mark.parametrize("path", ["/plain", "/typed"])
def test_chunked_body_past_the_limit_is_413(client: TestClient, path: str) -> None:
    resp = client.post(path, content=chunked(LIMIT * 4), headers=JSON)
    assert resp.status_code == 413
    assert "limit of 4096 bytes" in resp.json()["error"]["message"]
    assert seen == []


@pytest.mark.parametrize("path, headers", [
    ("/plain", JSON), ("/typed", JSON),
    ("/plain", {"Content-Type": "application/json; charset=UTF-8"}),
    ("/typed", {"Content-Type": "application/json; charset=UTF-8"}),
    ("/plain", {}),  # read as JSON, as Nova does (FastAPI's typed bodies insist on the type)
])
def test_good_bodies_pass(client: TestClient, path: str, headers: dict) -> None:
    resp = client.post(path, content=b'{"name": "caf\\u00e9 \\ud83d\\ude00"}', headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"ok": "café \U0001f600"}


def test_route_media_types(client: TestClient) -> None:
    patch = "application/openstack-images-v2.1-json-patch"
    assert client.patch("/patch", content=b"[]", headers={"Content-Type": patch}).json() == {
        "ok": True}
    resp = client.post("/plain", content=b'{"name": "a"}', headers={"Content-Type": patch})
    assert resp.status_code == 415 and seen == [[]]


def test_streamed_upload_keeps_its_own_limit(client: TestClient) -> None:
    resp = client.put("/x/file", content=chunked(LIMIT * 4),
                      headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 200 and resp.json()["size"] > LIMIT * 4


def test_validation_errors_do_not_echo_the_value(client: TestClient) -> None:
    resp = client.post("/typed", json={"name": "n", "extra": "x" * 3000})
    assert resp.status_code == 400 and len(resp.text) < 500
    resp = client.post("/plain", json={"name": ["y" * 3000]})
    assert resp.status_code == 400 and len(resp.text) < 300
