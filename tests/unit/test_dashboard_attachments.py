"""What the dashboard's volume and instance pages show of attachments."""

from __future__ import annotations

import pytest

from atwill.controller.dashboard.attachments import (
    attachable_servers,
    choice,
    volume_attachments,
)
from atwill.controller.dashboard.client import ApiError
from atwill.controller.dashboard.web import Form


def test_a_volume_s_attachments_name_their_servers_where_seen() -> None:
    servers = {"s1": {"id": "s1", "name": "web", "status": "ACTIVE"}}
    volume = {"attachments": [{"server_id": "s1", "device": "/dev/vdb"},
                              {"server_id": "s2"}]}
    assert volume_attachments(volume, servers) == [
        {"server_id": "s1", "device": "/dev/vdb", "server_name": "web"},
        {"server_id": "s2", "device": "", "server_name": ""}]
    assert volume_attachments({"attachments": None}, servers) == []


def test_only_servers_nova_attaches_to_are_offered_by_name() -> None:
    servers = {i: {"id": i, "name": name, "status": status} for i, name, status in [
        ("a", "web", "ACTIVE"), ("b", "db", "SHUTOFF"), ("c", "app", "BUILD"),
        ("d", "cache", "PAUSED"), ("e", "old", "ERROR")]}
    assert [s["name"] for s in attachable_servers(servers)] == ["cache", "db", "web"]


def test_an_empty_choice_is_a_400_naming_what_to_choose() -> None:
    assert choice(Form({"server": ["s1"]}), "server", "an instance") == "s1"
    with pytest.raises(ApiError) as refused:
        choice(Form({"server": [""]}), "server", "an instance")
    assert (refused.value.status, refused.value.message) == (400, "Choose an instance.")
