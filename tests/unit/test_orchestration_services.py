"""The engine's view of the services: every answer, an unexpected error's too, is one the
engine can fail a resource with."""

from __future__ import annotations

import asyncio

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from atwill.controller.orchestration.services import Api, ResourceFailure


async def broken(request: Request) -> JSONResponse:
    raise AttributeError("'NoneType' object has no attribute 'startswith'")


async def refused(request: Request) -> JSONResponse:
    return JSONResponse({"NeutronError": {"message": "Quota exceeded"}}, status_code=409)


APP = Starlette(routes=[Route("/broken", broken, methods=["POST"]),
                        Route("/refused", refused, methods=["POST"])])


async def _call(path: str) -> ResourceFailure:
    api = Api(APP, "http://controller", "token")
    try:
        with pytest.raises(ResourceFailure) as caught:
            await api.post(path, {})
        return caught.value
    finally:
        await api.close()


def test_a_service_that_fails_unexpectedly_fails_the_resource() -> None:
    # Before: the app's AttributeError itself reached the engine, which only fails a
    # resource on ResourceFailure, so the resource stayed IN_PROGRESS.
    failure = asyncio.run(_call("/broken"))
    assert failure.kind == "InternalServerError"


def test_a_refusal_keeps_its_kind_and_message() -> None:
    failure = asyncio.run(_call("/refused"))
    assert (failure.kind, str(failure)) == ("Conflict", "Quota exceeded")
