"""Block Storage os-services enable/disable bodies, checked as Cinder checks them."""

from __future__ import annotations

from typing import Any

import pytest

from atwill.core.errors import BadRequest, NotFound
from atwill.core.volume_service_update import parse

HOST = {"host": "node1@atwill", "binary": "cinder-volume"}


def test_enable_clears_the_reason_and_echoes_cinders_body() -> None:
    update = parse("enable", HOST)
    assert (update.host, update.binary, update.disabled) == ("node1@atwill", "cinder-volume",
                                                             False)
    assert update.sets_reason and update.reason is None
    assert update.echo == {"disabled": False, "status": "enabled", "host": "node1@atwill",
                           "service": "", "binary": "cinder-volume"}


def test_disable_keeps_the_reason_and_log_reason_sets_it() -> None:
    plain = parse("disable", HOST)
    assert plain.disabled and not plain.sets_reason
    assert "disabled_reason" not in plain.echo and plain.echo["status"] == "disabled"
    logged = parse("disable-log-reason", {**HOST, "disabled_reason": " maintenance "})
    assert logged.disabled and logged.sets_reason and logged.reason == " maintenance "
    assert logged.echo["disabled_reason"] == " maintenance "
    bare = parse("disable-log-reason", HOST)  # Cinder: no reason is a null reason
    assert bare.sets_reason and bare.reason is None
    assert parse("disable-log-reason", {**HOST, "disabled_reason": "x" * 255}).reason


def test_the_deprecated_service_key_names_the_binary() -> None:
    update = parse("disable", {"host": "node1", "service": "cinder-volume"})
    assert update.binary == "cinder-volume"
    assert (update.echo["service"], update.echo["binary"]) == ("cinder-volume", "")
    both = parse("enable", {"host": "h", "binary": "cinder-volume", "service": "other"})
    assert both.binary == "cinder-volume"


@pytest.mark.parametrize(("action", "body", "message"), [
    ("enable", {"host": "node1@atwill"}, "'binary' is a required property"),
    ("enable", {"binary": "cinder-volume"}, "Host field is missing."),
    ("enable", {"binary": "cinder-volume", "host": None}, "Host field is missing."),
    ("enable", {**HOST, "bogus": 1}, "('bogus' was unexpected)"),
    ("disable", {**HOST, "disabled_reason": "x"}, "('disabled_reason' was unexpected)"),
    ("enable", {"host": 5, "binary": "cinder-volume"}, "5 is not of type 'string'"),
    ("enable", {"host": "a b", "binary": "cinder-volume"}, "does not match"),
    ("enable", {"host": "h" * 256, "binary": "cinder-volume"}, "too long"),
    ("enable", {"host": "h", "binary": ""}, "should be non-empty"),
    ("enable", {"host": "h", "binary": ["cinder-volume"]}, "is not of type 'string'"),
    ("enable", {**HOST, "cluster": 3}, "field/attribute cluster"),
    ("disable-log-reason", {**HOST, "disabled_reason": 7}, "7 is not of type 'string'"),
    ("disable-log-reason", {**HOST, "disabled_reason": None}, "is not of type 'string'"),
    ("disable-log-reason", {**HOST, "disabled_reason": "   "}, "minimum character"),
    ("disable-log-reason", {**HOST, "disabled_reason": "x" * 256}, "more than 255"),
    # NUL was a 500 on PostgreSQL (a review found it); ESC reached admins' terminals.
    ("disable-log-reason", {**HOST, "disabled_reason": "a\u0000b"}, "control characters"),
    ("disable-log-reason", {**HOST, "disabled_reason": "a\x1b[2Jb"}, "control characters"),
])
def test_bad_bodies_are_cinders_400s(action: str, body: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(action, body)
    assert message in caught.value.message


@pytest.mark.parametrize("action", ["nosuch", "Enable", "disable-log", ""])
def test_unknown_actions_are_cinders_404(action: str) -> None:
    with pytest.raises(NotFound) as caught:
        parse(action, HOST)
    assert caught.value.message == "Unknown action"


def test_freeze_bodies_are_cinders() -> None:
    from atwill.core.volume_service_update import parse_backend

    act = parse_backend("freeze", {"host": "node1@atwill"}, clustered=False)
    assert (act.host, act.cluster) == ("node1@atwill", None)
    # Before 3.26 a cluster is not read: the host is still required.
    with pytest.raises(BadRequest, match="Host field is missing."):
        parse_backend("thaw", {"cluster": "c"}, clustered=False)
    assert parse_backend("thaw", {"cluster": "c"}, clustered=True).cluster == "c"
    with pytest.raises(BadRequest, match="One and only one of cluster and host"):
        parse_backend("thaw", {"cluster": "c", "host": "h"}, clustered=True)
    with pytest.raises(BadRequest, match="'backend_id' was unexpected"):
        parse_backend("freeze", {"host": "h", "backend_id": "b"}, clustered=False)
    assert parse_backend("failover_host", {"host": "h", "backend_id": "b"}, False).host == "h"
    with pytest.raises(BadRequest, match="It must be a string or null"):
        parse_backend("freeze", {"host": "h", "cluster": 3}, clustered=True)
