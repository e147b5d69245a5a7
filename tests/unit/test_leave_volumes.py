"""`atwill leave` of a storage node refused for its volumes: no drain is offered or run
(a drain moves instances, not volumes), the controller's message is what the user sees."""

from __future__ import annotations

import httpx
import pytest

from atwill.agent.client import ClusterError
from atwill.cli import leave_drain

MESSAGE = "Node n1 still holds 2 volume(s) and 0 snapshot(s) of the Block Storage service"


def test_a_refusal_for_volumes_is_not_drained() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(409, json={"error": {
            "code": 409, "title": "Conflict", "message": MESSAGE,
            "type": leave_drain.HOLDS_VOLUMES}})

    with httpx.Client(transport=httpx.MockTransport(answer), base_url="https://c") as http, \
            pytest.raises(ClusterError) as caught:
        leave_drain.leave(http, "n1", force=False, drain=True)
    assert caught.value.message == MESSAGE and caught.value.status == 409
    assert asked == ["/cluster/v1/nodes/n1/leave"]  # no drain started
