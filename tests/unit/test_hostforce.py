"""Parsing Nova's forced-host availability zones and 2.74's requested destination."""

from __future__ import annotations

import pytest

from atwill.core.errors import BadRequest
from atwill.core.hostforce import Destination, parse_zone, requested


@pytest.mark.parametrize(("value", "expected"), [
    (None, Destination(None)),
    ("", Destination(None)),
    ("az1", Destination("az1")),
    ("nova:node1", Destination("nova", "node1", forced=True)),
    ("nova:node1:node1", Destination("nova", "node1", forced=True)),
    ("nova::node1", Destination("nova", "node1", forced=True)),
    (":node1", Destination(None, "node1", forced=True)),
    ("nova:", Destination("nova")),
])
def test_parse_zone(value: str | None, expected: Destination) -> None:
    assert parse_zone(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("a:b:c:d", "Unable to parse availability_zone"),
    ("nova:node1:node2", "Compute host node1 could not be found."),
])
def test_parse_zone_refuses(value: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_zone(value)


def test_requested_host_narrows_without_forcing() -> None:
    assert requested(Destination("az"), "n1", None) == Destination("az", "n1")
    assert requested(Destination(None), None, "n1") == Destination(None, "n1")
    assert requested(Destination(None), "n1", "n1") == Destination(None, "n1")
    assert requested(Destination("az"), None, None) == Destination("az")


def test_requested_host_refusals() -> None:
    with pytest.raises(BadRequest, match="mutually exclusive"):
        requested(parse_zone("nova:n1"), "n1", None)
    with pytest.raises(BadRequest, match="Compute host n1 could not be found."):
        requested(Destination(None), "n1", "n2")
