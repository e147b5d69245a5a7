"""Every route that takes a body refuses malformed bodies the same way, at the edge.

The table is every POST, PUT and PATCH route of every service (read from the apps
themselves, so a new route is covered without being listed), each sent each class
of bad body the fuzz of issue 11 found: nesting 10,000 deep, a lone surrogate, a
body that is not JSON's media type, and a chunked body past the size limit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from fastapi.routing import APIRoute

from atwill.config import Settings
from atwill.controller.app import APIS
from atwill.controller.limits import streamed
from tests.cloud import Cloud

FACTORIES = dict(APIS)
LIMIT = 1024 * 1024


def body_routes() -> list[tuple[str, str]]:
    """(method, path) of every route that takes a body, path parameters filled in."""
    # The apps are only read for their routes; nothing is served from these.
    ctl = SimpleNamespace(settings=Settings(max_request_body=LIMIT))
    found = []
    for prefix, create in FACTORIES.items():
        for route in api_routes(create(ctl).routes):  # type: ignore[arg-type]
            path = prefix + route.path_format.format(
                **{name: str(uuid.uuid4()) for name in route.param_convertors})
            for method in sorted(route.methods & {"POST", "PUT", "PATCH"}):
                if not streamed(path):
                    found.append((method, path))
    return found


def api_routes(routes: list, prefix: str = "") -> Iterator[APIRoute]:
    """The APIRoutes among routes, through included routers (FastAPI keeps them nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            if prefix:
                raise AssertionError("router prefixes are not used by atwill's services")
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes,
                                  prefix + route.include_context.prefix)


def deep() -> bytes:
    return b'{"x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"


def oversized() -> Iterator[bytes]:
    # A generator: httpx sends it chunked, with no Content-Length to refuse up front.
    yield b'{"name": "'
    for _ in range(LIMIT // 4096 + 2):
        yield b"x" * 4096
    yield b'"}'


# (class, body, content type, expected status)
CLASSES = [
    ("deep", deep, "application/json", 400),
    ("surrogate", lambda: rb'{"name": "a\ud800", "x": {"\udc00": 1}}', "application/json", 400),
    ("content-type", lambda: json.dumps({"name": "a"}).encode(), "text/plain", 415),
    ("chunked", oversized, "application/json", 413),
]
ROUTES = body_routes()


def test_every_body_route_is_covered() -> None:
    paths = {path.split("/")[1] for _method, path in ROUTES}
    assert paths == {m.strip("/") for m in FACTORIES}
    assert ("POST", "/identity/v3/auth/tokens") in ROUTES
    assert ("POST", "/cluster/v1/join") in ROUTES
    assert len(ROUTES) > 50


def message_of(payload: dict) -> str:
    """The message of any service's error envelope (Heat's has it under "error")."""
    if isinstance(payload.get("error"), dict):
        return payload["error"].get("message", "")
    inner = next(iter(payload.values()))
    return inner.get("message", "") if isinstance(inner, dict) else ""


@pytest.mark.parametrize("kind, make, content_type, status", CLASSES,
                         ids=[c[0] for c in CLASSES])
def test_bad_bodies_are_4xx_everywhere(cloud: Cloud, kind: str, make, content_type: str,
                                       status: int) -> None:
    token = cloud.token()
    before = cloud.db_snapshot()
    log_start = len(cloud.log())
    failures = []
    with cloud.http(token) as client:
        for method, path in ROUTES:
            body = make()
            resp = client.request(method, path, content=body,
                                  headers={"Content-Type": content_type})
            try:
                message = message_of(resp.json())
            except ValueError:
                message = ""
            if resp.status_code != status or not message or len(resp.text) > 1000:
                failures.append((method, path, resp.status_code, resp.text[:200]))
            # The next request on the same client (and connection, when the server kept
            # it) still works.
            after = client.get("/identity/v3")
            if after.status_code != 200:
                failures.append((method, path, "next request", after.status_code))
    assert not failures, "\n".join(map(str, failures))
    assert cloud.db_snapshot() == before
    assert "Traceback" not in cloud.log()[log_start:]


def test_keep_alive_survives_a_refused_body(cloud: Cloud) -> None:
    """A refused body that was read whole leaves the connection open for the next request."""
    with cloud.http(cloud.token()) as client:
        first = client.post("/compute/v2.1/flavors", content=deep(),
                            headers={"Content-Type": "application/json"})
        second = client.get("/compute/v2.1/flavors")
        third = client.post("/identity/v3/auth/tokens", content=b'{"auth": "\\udfff"}',
                            headers={"Content-Type": "application/json"})
        fourth = client.get("/identity/v3")
    assert (first.status_code, second.status_code) == (400, 200)
    assert (third.status_code, fourth.status_code) == (400, 200)
    assert "nested deeper" in first.json()["badRequest"]["message"]
    assert "surrogate" in third.json()["error"]["message"]


def test_json_clients_keep_working(cloud: Cloud) -> None:
    """application/json with a charset, and no Content-Type at all, are read as JSON."""
    name = f"edge-{uuid.uuid4().hex[:8]}"
    with cloud.http(cloud.token()) as client:
        body = json.dumps({"flavor": {"name": name, "ram": 64, "vcpus": 1, "disk": 0}})
        made = client.post("/compute/v2.1/flavors", content=body,
                           headers={"Content-Type": "application/json; charset=UTF-8"})
        bare = client.post("/compute/v2.1/os-keypairs", content=json.dumps(
            {"keypair": {"name": name}}).encode())
    assert made.status_code == 200, made.text
    assert bare.status_code == 200, bare.text
