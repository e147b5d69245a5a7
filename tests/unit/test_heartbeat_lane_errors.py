"""The heartbeat lane (cluster/heartbeat_lane.py): an error while answering a beat lean
is never a bare 500 from the lane; the beat goes on to the full route."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from atwill.controller.cluster.heartbeat_lane import HeartbeatLane


def test_an_error_in_the_lean_path_falls_through_to_the_route() -> None:
    body = json.dumps({"overlay": {}, "instances": {}, "running_vms": 0}).encode()
    scope = {"type": "http", "method": "POST", "path": "/cluster/v1/nodes/n0/heartbeat",
             "headers": [], "client": ("10.0.0.9", 1),
             "extensions": {"tls": {"client_cert_chain": [b"cert"]}}}
    routed: list[bytes] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        routed.append((await receive())["body"])

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        raise AssertionError(f"the lane answered itself: {message}")

    broken = object()  # a controller the lean path fails on (no settings, no db)
    asyncio.run(HeartbeatLane(app, broken)(scope, receive, send))  # type: ignore[arg-type]
    assert routed == [body]  # the route got the beat, its body replayed
