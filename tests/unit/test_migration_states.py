"""core/migration_states: os-migrateLive bodies per microversion, abortability, views."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from atwill.core import migration_states as ms
from atwill.core.errors import BadRequest
from atwill.core.microversion import Version


def v(text: str) -> Version:
    return Version.parse(text)


@pytest.mark.parametrize(("version", "body", "words"), [
    ("2.1", {"host": None, "block_migration": True}, "'disk_over_commit' is a required"),
    ("2.1", {"host": None, "block_migration": "auto", "disk_over_commit": False},
     "a boolean"),
    ("2.25", {"host": "h", "block_migration": True, "disk_over_commit": False},
     "'disk_over_commit' was unexpected"),
    ("2.25", {}, "'block_migration' is a required"),
    ("2.29", {"block_migration": "auto", "host": "h", "force": True}, "'force'"),
    ("2.30", {"block_migration": "auto", "force": True}, "non-provided destination"),
    ("2.68", {"block_migration": "auto", "host": "h", "force": True}, "'force'"),
    ("2.30", {"block_migration": "auto", "host": ""}, "host"),
    ("2.30", {"block_migration": "auto", "host": 5}, "host"),
    ("2.30", {"block_migration": "auto", "host": "h", "force": "yes"}, "force"),
    ("2.30", [], "an object"),
])
def test_bad_bodies(version: str, body: object, words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        ms.parse_live(body, v(version))


def test_good_bodies() -> None:
    assert ms.parse_live({"block_migration": "auto"}, v("2.25")) == ms.LiveRequest(
        None, "auto", False)
    assert ms.parse_live({"block_migration": "auto", "host": "n2", "force": True},
                         v("2.30")) == ms.LiveRequest("n2", "auto", True)
    assert ms.parse_live({"host": None, "block_migration": True, "disk_over_commit": False},
                         v("2.1")) == ms.LiveRequest(None, True, False)


def test_abortable_per_microversion() -> None:
    assert ms.abortable("running", v("2.24"))
    assert not ms.abortable("preparing", v("2.64"))
    assert ms.abortable("preparing", v("2.65")) and ms.abortable("queued", v("2.65"))
    assert not ms.abortable("completed", v("2.90"))


def record(status: str = "running") -> SimpleNamespace:
    when = dt.datetime(2026, 1, 2, 3, 4, 5)
    return SimpleNamespace(
        id=7, uuid="u-7", instance_uuid="i-1", status=status, source_compute="a",
        source_node="a", dest_compute="b", dest_node="b", dest_host="100.72.0.3",
        old_instance_type_id=None, new_instance_type_id=None, migration_type="live-migration",
        memory_total=1, memory_processed=2, memory_remaining=3, disk_total=4,
        disk_processed=5, disk_remaining=6, created_at=when, updated_at=None,
        user_id="usr", project_id="prj")


def test_os_migration_view_links_only_in_progress() -> None:
    old = ms.os_migration_view(record(), v("2.22"), "https://c/compute")
    assert "migration_type" not in old and "links" not in old and "uuid" not in old
    assert old["created_at"] == "2026-01-02T03:04:05.000000" and old["updated_at"] is None
    new = ms.os_migration_view(record(), v("2.80"), "https://c/compute")
    assert new["links"][0] == {"rel": "self",
                               "href": "https://c/compute/v2.1/servers/i-1/migrations/7"}
    assert (new["uuid"], new["user_id"], new["project_id"]) == ("u-7", "usr", "prj")
    assert "links" not in ms.os_migration_view(record("completed"), v("2.80"), "x")


def test_server_migration_view() -> None:
    out = ms.server_migration_view(record(), v("2.23"))
    assert out["server_uuid"] == "i-1" and out["disk_remaining_bytes"] == 6
    assert "uuid" not in out and "instance_uuid" not in out
    assert ms.server_migration_view(record(), v("2.59"))["uuid"] == "u-7"


def test_list_filters() -> None:
    query = {"host": "a", "user_id": "u", "status": "", "bogus": "x"}
    assert ms.list_filters(query, v("2.79")) == {"host": "a"}
    assert ms.list_filters(query, v("2.80")) == {"host": "a", "user_id": "u"}
