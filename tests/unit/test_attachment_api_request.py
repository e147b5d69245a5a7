"""An attachment made through the Block Storage attachments API names no Nova request:
its error event goes on no server action (review of 0e058c2: by time it landed on the
server's latest attach_volume action, however old). A caller's own key is never kept."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from atwill.controller.volume import attach_outcomes, attachments


class _Session:
    def __init__(self, node: object) -> None:
        self.node = node

    def scalar(self, _query: object) -> object:
        return self.node


@pytest.mark.parametrize("given", [{}, {"attach_request": "req-someone-elses"}])
def test_the_attachments_api_names_no_request(given: dict,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attachments, "_check_target", lambda *args: None)
    node = SimpleNamespace(id="n1", name="node1")
    att = SimpleNamespace(connector=None, node_id=None, node_name=None, status="reserved",
                          device=None)
    vol = SimpleNamespace(status="reserved")
    attachments._connect(_Session(node), vol, att, {"host": "node1", **given}, None)
    assert att.connector[attach_outcomes.ATTACH_REQUEST] == ""
    assert (att.status, vol.status, att.node_id) == ("attaching", "attaching", "n1")


def test_a_request_the_server_kept_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    """os-volume_attachments records its request (attach_outcomes.asked) before or after:
    a connector given later never replaces it."""
    monkeypatch.setattr(attachments, "_check_target", lambda *args: None)
    att = SimpleNamespace(connector={"attach_request": "req-1"}, node_id=None,
                          node_name=None, status="reserved", device=None)
    attachments._connect(_Session(SimpleNamespace(id="n1", name="node1")),
                         SimpleNamespace(status="reserved"), att,
                         {"host": "node1", "attach_request": "req-2"}, None)
    assert att.connector[attach_outcomes.ATTACH_REQUEST] == "req-1"
