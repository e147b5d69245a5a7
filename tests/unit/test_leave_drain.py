"""cli/leave_drain: `atwill leave` refused for instances drains first only when asked."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import typer

from atwill.agent.client import ClusterError
from atwill.cli import leave_drain

LEAVE = "/cluster/v1/nodes/n1/leave"
REFUSED = {"error": {"message": "Node n1 still holds 1 instance(s).", "code": 409}}


class Controller:
    """Answers leave (409 while instances are left) and the node's own drain."""

    def __init__(self, drain_views: list[dict[str, Any]]) -> None:
        self.views, self.calls, self.left = drain_views, [], 1

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        if request.url.path == LEAVE:
            return httpx.Response(409, json=REFUSED) if self.left else httpx.Response(204)
        view = self.views.pop(0) if len(self.views) > 1 else self.views[0]
        self.left = view["instances"]
        return httpx.Response(202 if request.method == "POST" else 200,
                              content=json.dumps(view))


def view(instances: int, running: bool, stuck: list[dict[str, str]] | None = None) -> dict:
    return {"draining": True, "instances": instances, "total": 1, "done": 1 - instances,
            "moving": [], "stuck": stuck or [], "running": running}


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leave_drain.time, "sleep", lambda _s: None)
    monkeypatch.setattr(leave_drain.sys.stdin, "isatty", lambda: False)


def client(ctl: Controller) -> httpx.Client:
    return httpx.Client(base_url="https://ctl", transport=httpx.MockTransport(ctl))


def test_refused_without_drain_names_the_option_and_drains_nothing() -> None:
    ctl = Controller([view(0, False)])
    with pytest.raises(ClusterError) as refused:
        leave_drain.leave(client(ctl), "n1", force=False, drain=False)
    assert refused.value.status == 409 and "atwill leave --drain" in refused.value.message
    assert ctl.calls == [("POST", LEAVE)]


def test_with_drain_it_drains_then_leaves() -> None:
    ctl = Controller([view(1, True), view(0, True), view(0, False)])
    leave_drain.leave(client(ctl), "n1", force=False, drain=True)
    assert ctl.calls[0] == ("POST", LEAVE) and ctl.calls[1] == ("POST", f"{LEAVE}/drain")
    assert ctl.calls[-1] == ("POST", LEAVE) and ("GET", f"{LEAVE}/drain") in ctl.calls


def test_what_cannot_move_is_named_and_the_node_does_not_leave() -> None:
    stuck = [{"server": "vm1", "reason": "cold migration failed: No valid host"}]
    ctl = Controller([view(1, True), view(1, False, stuck)])
    with pytest.raises(typer.Exit):
        leave_drain.leave(client(ctl), "n1", force=False, drain=True)
    assert ctl.calls.count(("POST", LEAVE)) == 1
