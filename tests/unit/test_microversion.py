"""Compute microversion parsing and the compute app's echo middleware."""

from __future__ import annotations

import asyncio

import pytest

from atwill.controller.compute.common import Microversions, nova_error
from atwill.core import microversion
from atwill.core.errors import BadRequest, Conflict, NotAcceptable, NotFound, PayloadTooLarge
from atwill.core.microversion import MAX, MIN, Version


def test_no_header_means_minimum() -> None:
    assert microversion.requested({}) == MIN == Version(2, 1)


@pytest.mark.parametrize(("headers", "expected"), [
    ({"openstack-api-version": "compute 2.53"}, Version(2, 53)),
    ({"x-openstack-nova-api-version": "2.10"}, Version(2, 10)),
    ({"openstack-api-version": "volume 3.5, compute 2.61"}, Version(2, 61)),
    ({"openstack-api-version": "compute latest"}, MAX),
    ({"openstack-api-version": "compute 2.60", "x-openstack-nova-api-version": "2.2"},
     Version(2, 60)),
])
def test_requested(headers: dict[str, str], expected: Version) -> None:
    assert microversion.requested(headers) == expected


@pytest.mark.parametrize("text", ["2", "2.x", "two", "2.01", "", "2.1.1"])
def test_malformed_is_400(text: str) -> None:
    with pytest.raises(BadRequest):
        microversion.requested({"x-openstack-nova-api-version": text or " "})


@pytest.mark.parametrize("text", ["2.97", "3.0", "2.0", "1.1"])
def test_out_of_range_is_406(text: str) -> None:
    with pytest.raises(NotAcceptable):
        microversion.requested({"openstack-api-version": f"compute {text}"})


def test_ordering_and_string_comparison() -> None:
    assert Version(2, 9) < Version(2, 10)
    assert Version(2, 55) >= "2.55"
    assert not Version(2, 54) >= "2.55"
    assert str(MAX) == "2.96"


@pytest.mark.parametrize(("err", "name"), [
    (BadRequest("x"), "badRequest"), (NotFound("x"), "itemNotFound"),
    (Conflict("x"), "conflictingRequest"), (PayloadTooLarge("x"), "overLimit"),
    (NotAcceptable("x"), "computeFault")])
def test_nova_error_envelope(err: Exception, name: str) -> None:
    body = nova_error(err)  # type: ignore[arg-type]
    assert body == {name: {"code": err.status, "message": "x"}}  # type: ignore[attr-defined]


def _call(headers: list[tuple[bytes, bytes]]) -> tuple[list[dict], dict]:
    seen: dict = {}

    async def inner(scope, receive, send) -> None:  # noqa: ANN001
        seen["version"] = scope["state"]["compute_version"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "headers": headers, "state": {}}
    asyncio.run(Microversions(inner)(scope, receive, send))
    return sent, seen


def test_middleware_echoes_headers() -> None:
    sent, seen = _call([(b"openstack-api-version", b"compute 2.55")])
    assert seen["version"] == Version(2, 55)
    headers = dict(sent[0]["headers"])
    assert headers[b"openstack-api-version"] == b"compute 2.55"
    assert headers[b"x-openstack-nova-api-version"] == b"2.55"
    assert b"OpenStack-API-Version" in headers[b"vary"]


def test_middleware_rejects_without_calling_app() -> None:
    sent, seen = _call([(b"x-openstack-nova-api-version", b"9.9")])
    assert sent[0]["status"] == 406 and not seen
    assert b"computeFault" in sent[1]["body"]
    sent, seen = _call([(b"x-openstack-nova-api-version", b"junk")])
    assert sent[0]["status"] == 400 and b"badRequest" in sent[1]["body"]
